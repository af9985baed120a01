#!/usr/bin/env bash
# The real-data reproductions of docs/reproductions.md, sized for a 2-core CPU: each study is its
# paper's preset with the overrides listed here (the deviations the doc names), into
# outputs/sweeps/repro_<study>/, then its analysis, copied (tables and figures, never weights) to
# docs/reproductions/<study>/.
#
#   bash scripts/reproduce.sh s1|s2|s2_regularization|s4|s5|dziugaite_roy|double_descent|rank|all      (after: python -m gen.data.fetch)
#   bash scripts/reproduce.sh redraw   the committed tables' rankings and figures again (no run folders needed)
#
# Relaunching skips what is done; rerun=true retrains.  One CPU thread per run (GEN_CPU_THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
export GEN_CPU_THREADS="${GEN_CPU_THREADS:-1}"
COMMON=(trainer.progress=false trainer.save_weights=false analysis.auto=false)

sweep() { python launch.py -m "${COMMON[@]}" "$@"; }

publish() {   # analyse outputs/sweeps/$1 and copy its small outputs to docs/reproductions/$1 (or to $2)
    local sweep_dir="outputs/sweeps/$1" doc_dir="docs/reproductions/${2:-$1}"
    python -m analysis "$sweep_dir"
    rm -rf "$doc_dir" && mkdir -p "$doc_dir"
    cp "$sweep_dir"/analysis/{runs.csv,status.csv,report.md} "$doc_dir"/
    cp "$sweep_dir"/analysis/figures/*.png "$doc_dir"/ 2>/dev/null || true
    [ -f "$sweep_dir/analysis/rank.csv" ] && cp "$sweep_dir/analysis/rank.csv" "$doc_dir"/
    [ -f "$sweep_dir/analysis/regularization.csv" ] && cp "$sweep_dir/analysis/regularization.csv" "$doc_dir"/
    cp "$sweep_dir"/analysis/double_descent*.csv "$doc_dir"/ 2>/dev/null || true
    return 0
}

s1() {   # Neyshabur et al. 2017, width: true labels on all 60,000 images, random labels on 5,000
    local widths=model.hidden_units=8,16,32,64,128,256,512,1024,2048,4096
    sweep experiment=neyshabur_width name=repro_s1 "$widths" corruption=none trainer.max_epochs=30
    sweep experiment=neyshabur_width name=repro_s1 "$widths" corruption=random_labels \
        dataset.train_size=5000 trainer.max_epochs=400 trainer.eval_every=4
    publish repro_s1
}

# Zhang et al. 2017 (as the seeds reproduce it) on 5,000 MNIST images.  Its lr decays × 0.95 per epoch of
# 50,000 images; on 5,000 the same decay per step is 0.95^(5000/50000) = 0.99488 per epoch (with 0.95
# the lr is gone after ~60 epochs of 40 steps and mlp1 stops at 82% train accuracy on random labels).
S2_PROTOCOL=(dataset=mnist dataset.crop=null dataset.train_size=5000 optimizer.schedule.gamma=0.99488
             trainer.max_epochs=300 measure=neyshabur2017)

s2() {
    sweep experiment=zhang_randomization name=repro_s2_randomization "${S2_PROTOCOL[@]}" \
        model=mlp1,mlp3
    publish repro_s2_randomization
    sweep experiment=zhang_label_noise name=repro_s2_label_noise "${S2_PROTOCOL[@]}" model=mlp1
    publish repro_s2_label_noise
}

s2_regularization() {   # Zhang et al.'s Table 1 sized for this CPU: mlp1 and a narrowed alexnet_small on 2,000
    # Fashion-MNIST images × crop_flip/none × weight decay 5e-4/0 × true/random labels (the preset's own sweep)
    sweep experiment=zhang_regularization_small name=repro_s2_regularization
    # and Zhang's Theorem 1 network, built in closed form for the same 2,000 images, true and random labels
    sweep experiment=zhang_regularization_small name=repro_s2_regularization model=zhang_expressivity \
        trainer.max_epochs=0 augment=none optimizer.weight_decay=0.0
    publish repro_s2_regularization
}

S4_PROTOCOL=(experiment=sharpness_optimizers name=repro_s4 dataset=fashion_mnist model=simple_batch
             dataset.train_size=1000 trainer.max_epochs=20 trainer.eval_every=10 trainer.checkpoint_every=0
             'measure.names=[num_params,margin,min_sharpness]' measure.params.max_samples=500)

s4() {   # minimum sharpness and SAM across optimizers: simple_batch on 1,000 Fashion-MNIST images, ≤ 20 epochs
    sweep "${S4_PROTOCOL[@]}" "${@}"
    publish repro_s4
}

s5() {   # the steady MLP on sinusoids f = 0.25 … 1, one seed, 400 of the paper's 3000 epochs
    sweep experiment=steady_sinusoid name=repro_s5 trainer.max_epochs=400 seed=0
    publish repro_s5
}

dziugaite_roy() {   # Dziugaite & Roy 2017's T-600 and R-600: the preset is CPU-sized (10,000 images, 2,000 posterior
    # steps, 100 Monte-Carlo draws; docs/reproductions.md names every departure from the paper)
    sweep experiment=dziugaite_roy name=repro_dziugaite_roy
    publish repro_dziugaite_roy
    # a variant, not DR17's protocol: lr 0.01 lets the 2,000 steps move log s ten times as far
    sweep experiment=dziugaite_roy name=repro_dziugaite_roy_lr0.01 measure.params.certified_lr=0.01
    publish repro_dziugaite_roy_lr0.01
}

double_descent() {   # Belkin et al. 2019 / Nakkiran et al. 2019 on 4,000 MNIST images, squared loss: model-wise,
    # 9 widths across n·K = 40,000 parameters × label noise 20 % and 0, 500 of Belkin's 6,000 epochs
    sweep experiment=double_descent_modelwise name=repro_double_descent_modelwise \
        model.hidden_units=8,16,32,40,48,56,64,128,256 corruption.prob=0.2,0.0 trainer.max_epochs=500 \
        trainer.eval_every=25
    publish repro_double_descent_modelwise repro_double_descent   # also the widest net's test error per epoch
}

rank() {   # every measure against the gap over the real-data S1 and S2 sweeps together
    python -m analysis rank outputs/sweeps/repro_s1 outputs/sweeps/repro_s2_randomization \
        outputs/sweeps/repro_s2_label_noise --out outputs/sweeps/repro_rank
    rm -rf docs/reproductions/repro_rank && mkdir -p docs/reproductions/repro_rank
    cp outputs/sweeps/repro_rank/*.csv outputs/sweeps/repro_rank/figures/*.png docs/reproductions/repro_rank/
}

REDRAWN=(repro_s1 repro_s2_randomization repro_s2_label_noise repro_s2_regularization repro_s4 repro_s5)
redraw() {   # from docs/reproductions/*/runs.csv alone: each sweep's ranking, the figures that need no history
    # (S2's loss curves and S5's trajectory need history.csv, which is not committed: they stay), the combined rank
    local out=outputs/redraw
    for study in "${REDRAWN[@]}"; do
        local doc_dir="docs/reproductions/$study"
        rm -rf "$out/$study"
        python -m analysis rank "$doc_dir/runs.csv" --out "$out/$study" > /dev/null
        python -m analysis plot "$doc_dir/runs.csv" --out "$out/$study" > /dev/null
        cp "$out/$study"/rank*.csv "$doc_dir"/
        for png in "$out/$study"/figures/*.png; do
            case "$(basename "$png")" in   # drawn from the history: without it they would lose a panel
                s2_loss_vs_step.png|s5_trajectory.png|s3_split_accuracy_vs_epoch.png) ;;
                *) cp "$png" "$doc_dir"/ ;;
            esac
        done
    done
    python -m analysis rank docs/reproductions/{repro_s1,repro_s2_randomization,repro_s2_label_noise}/runs.csv \
        --out "$out/repro_rank"
    rm -rf docs/reproductions/repro_rank && mkdir -p docs/reproductions/repro_rank
    cp "$out"/repro_rank/*.csv "$out"/repro_rank/figures/*.png docs/reproductions/repro_rank/
}

main() {   # one compound command: bash has read all of it before it starts, so editing this file is safe
case "${1:-}" in
    s1) s1 ;;
    s2) s2 ;;
    s2_regularization) s2_regularization ;;
    s4) shift; s4 "$@" ;;
    s5) s5 ;;
    dziugaite_roy) dziugaite_roy ;;
    double_descent) double_descent ;;
    rank) rank ;;
    redraw) redraw ;;
    all) s1; s2; s2_regularization; s4; s5; dziugaite_roy; double_descent; rank ;;
    *) echo "usage: bash scripts/reproduce.sh s1|s2|s2_regularization|s4|s5|dziugaite_roy|double_descent|rank|redraw|all" >&2; exit 2 ;;
esac
}
main "$@"; exit
