#!/usr/bin/env bash
# The real-data reproductions of docs/reproductions.md, sized for a 2-core CPU: each study is its
# paper's preset with the overrides listed here (the deviations the doc names), into
# outputs/sweeps/repro_<study>/, then its analysis, copied (tables and figures, never weights) to
# docs/reproductions/<study>/.
#
#   bash scripts/reproduce.sh s1|s2|s4|s5|rank|all      (after: python -m gen.data.fetch)
#
# Relaunching skips what is done; rerun=true retrains.  One CPU thread per run (GEN_CPU_THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
export GEN_CPU_THREADS="${GEN_CPU_THREADS:-1}"
COMMON=(trainer.progress=false trainer.save_weights=false analysis.auto=false)

sweep() { python launch.py -m "${COMMON[@]}" "$@"; }

publish() {   # analyse outputs/sweeps/$1 and copy its small outputs to docs/reproductions/$1
    local sweep_dir="outputs/sweeps/$1" doc_dir="docs/reproductions/$1"
    python -m analysis "$sweep_dir"
    rm -rf "$doc_dir" && mkdir -p "$doc_dir"
    cp "$sweep_dir"/analysis/{runs.csv,status.csv,report.md} "$doc_dir"/
    cp "$sweep_dir"/analysis/*.png "$doc_dir"/ 2>/dev/null || true
    [ -f "$sweep_dir/analysis/rank.csv" ] && cp "$sweep_dir/analysis/rank.csv" "$doc_dir"/
    return 0
}

s1() {   # Neyshabur et al. 2017, width: true labels on all 60,000 images, random labels on 5,000
    local widths=model.hidden_units=8,16,32,64,128,256,512,1024,2048,4096
    sweep experiment=neyshabur_width name=repro_s1 "$widths" corruption=none trainer.max_epochs=30
    sweep experiment=neyshabur_width name=repro_s1 "$widths" corruption=random_labels \
        dataset.train_size=5000 trainer.max_epochs=400 trainer.eval_every=4
    publish repro_s1
}

case "${1:-}" in
    s1) s1 ;;
    all) s1 ;;
    *) echo "usage: bash scripts/reproduce.sh s1|all" >&2; exit 2 ;;
esac
