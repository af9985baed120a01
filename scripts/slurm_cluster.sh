#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the cluster tests and for trying hydra/launcher=slurm:
#
#   bash scripts/slurm_cluster.sh start    # install (apt-get, as root) if missing, configure, start, wait for idle
#   bash scripts/slurm_cluster.sh status   # daemons and sinfo
#   bash scripts/slurm_cluster.sh stop     # stop the daemons this script started (by their pid files)
#
# Everything it writes (config, state, spool, logs, pid files) lives in GEN_SLURM_DIR (default
# /var/lib/gen-slurm); /etc/slurm/slurm.conf links there so sinfo/sbatch/submitit find it.  It runs
# inside containers: no cgroups (proctrack/linuxproc, task/none), no slurmdbd (sacct has no records;
# `scontrol show job` keeps finished jobs for MinJobAge seconds).  Start and stop are idempotent.
set -euo pipefail

DIR=${GEN_SLURM_DIR:-/var/lib/gen-slurm}
CONF=$DIR/slurm.conf
SYSTEM_CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=$DIR/munged.pid
CTLD_PID=$DIR/slurmctld.pid
SLURMD_PID=$DIR/slurmd.pid
NODE=$(hostname -s)

say() { echo "slurm_cluster: $*" >&2; }

alive() {  # alive PIDFILE: the process named in PIDFILE runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v munged >/dev/null || missing+=(munge)
    command -v sinfo >/dev/null && command -v sacct >/dev/null || missing+=(slurm-client)
    [ ${#missing[@]} -eq 0 ] && return
    [ "$(id -u)" -eq 0 ] || { say "needs root to install ${missing[*]}"; exit 1; }
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_config() {
    mkdir -p "$DIR"/state "$DIR"/spool "$DIR"/log
    local cpus mem_mb
    cpus=$(nproc)
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # leave the OS a tenth
    cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm_cluster.sh (gen's local test cluster); rewritten on every start.
ClusterName=gen
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=20
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# Containers: no cgroups.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
# Look at the queue every few seconds (default 60 s / 30 s), so requeued jobs start soon after cred_expire.
SchedulerParameters=sched_interval=5,bf_interval=5
# Preempted and timed-out jobs go back to the queue (submitit requeues them with scontrol requeue).
JobRequeue=1
ReturnToService=2
# Finished jobs stay visible to scontrol for ten minutes (there is no accounting database).
MinJobAge=600
KillWait=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$CONF.tmp" "$CONF"
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    if [ -e "$SYSTEM_CONF" ] && [ "$(readlink -f "$SYSTEM_CONF")" != "$(readlink -f "$CONF")" ]; then
        if ! grep -q "scripts/slurm_cluster.sh" "$SYSTEM_CONF"; then
            say "$SYSTEM_CONF exists and is not ours; leaving it (and this cluster) alone"
            exit 1
        fi
    fi
    ln -sfn "$CONF" "$SYSTEM_CONF"
}

start_munge() {
    alive "$MUNGE_PID" && return
    if [ ! -s "$MUNGE_KEY" ]; then
        say "creating $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    chown munge:munge "$MUNGE_KEY" /etc/munge
    chmod 0400 "$MUNGE_KEY"
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    touch "$MUNGE_PID" && chown munge:munge "$MUNGE_PID"
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
    wait_for "munged" 20 test -S /run/munge/munge.socket.2
}

start_slurm() {
    alive "$CTLD_PID" || /usr/sbin/slurmctld -f "$CONF"
    alive "$SLURMD_PID" || /usr/sbin/slurmd -f "$CONF"
    if ! wait_for "the node to be idle" 90 node_idle; then
        # A node that was down when slurmctld stopped comes back drained or down: resume it once.
        scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
        wait_for "the node to be idle" 60 node_idle || { status; exit 1; }
    fi
}

node_idle() {
    [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ]
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...: poll COMMAND every second
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq "$seconds"); do
        "$@" && return 0
        sleep 1
    done
    say "gave up waiting for $what after ${seconds}s (logs: $DIR/log)"
    return 1
}

stop_daemon() {  # stop_daemon NAME PIDFILE
    if alive "$2"; then
        local pid
        pid=$(cat "$2")  # read once: a daemon removes its pid file as it exits
        kill "$pid"
        wait_for "$1 to stop" 30 bash -c "! kill -0 $pid 2>/dev/null" || kill -9 "$pid" 2>/dev/null || true
        say "stopped $1"
    fi
    rm -f "$2"
}

status() {
    for daemon in munged:$MUNGE_PID slurmctld:$CTLD_PID slurmd:$SLURMD_PID; do
        if alive "${daemon#*:}"; then echo "${daemon%%:*}: running (pid $(cat "${daemon#*:}"))"
        else echo "${daemon%%:*}: stopped"; fi
    done
    sinfo 2>&1 || true
}

case "${1:-}" in
    start)
        install_packages
        write_config
        start_munge
        start_slurm
        say "running: partition $(sinfo -h -o %P | head -1), node $NODE idle (config $CONF, logs $DIR/log)"
        ;;
    stop)
        stop_daemon slurmd "$SLURMD_PID"
        stop_daemon slurmctld "$CTLD_PID"
        stop_daemon munged "$MUNGE_PID"
        ;;
    status)
        status
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
