#!/usr/bin/env bash
# A one-node SLURM cluster on localhost for the cluster tests and for trying hydra/launcher=slurm:
#
#   bash scripts/slurm_cluster.sh start    # install (apt-get, as root) if missing, configure, start, wait for idle
#   bash scripts/slurm_cluster.sh status   # "not installed", "stopped" (exit 3), or the daemons and sinfo (exit 0)
#   bash scripts/slurm_cluster.sh stop     # stop the daemons this script started (by their pid files)
#
# Everything it writes (config, state, spool, logs, pid files, the accounting database) lives in
# GEN_SLURM_DIR (default /var/lib/gen-slurm); /etc/slurm/slurm.conf and slurmdbd.conf link there so
# sinfo/sbatch/sacct/submitit find them.  It runs inside containers: no cgroups (proctrack/linuxproc,
# task/none).  Accounting (slurmdbd on a MariaDB of its own on 127.0.0.1:DB_PORT) is there because
# submitit asks sacct whether a job ended without a result (cancelled, killed).  Idempotent.
set -euo pipefail

DIR=${GEN_SLURM_DIR:-/var/lib/gen-slurm}
CONF=$DIR/slurm.conf
SYSTEM_CONF=/etc/slurm/slurm.conf
MUNGE_KEY=/etc/munge/munge.key
MUNGE_PID=$DIR/munged.pid
CTLD_PID=$DIR/slurmctld.pid
SLURMD_PID=$DIR/slurmd.pid
DB_RUN=$DIR/mariadb-run  # MariaDB runs as mysql: its socket, pid file and log go where it may write
DB_PID=$DB_RUN/mariadb.pid
DB_SOCKET=$DB_RUN/mariadb.sock
DBD_PID=$DIR/slurmdbd.pid
DB_PORT=${GEN_SLURM_DB_PORT:-3307}
DBD_CONF=$DIR/slurmdbd.conf
SYSTEM_DBD_CONF=/etc/slurm/slurmdbd.conf
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
    command -v slurmdbd >/dev/null || missing+=(slurmdbd)
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
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
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
# Look at the queue every few seconds (default 60 s / 30 s), so requeued jobs start soon after cred_expire.
SchedulerParameters=sched_interval=5,bf_interval=5
# Preempted and timed-out jobs go back to the queue (submitit requeues them with scontrol requeue).
JobRequeue=1
ReturnToService=2
# Finished jobs stay visible to scontrol for ten minutes (and to sacct for good).
MinJobAge=600
KillWait=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    mv "$CONF.tmp" "$CONF"
    (umask 077 && cat >"$DBD_CONF" <<EOF
# Written by scripts/slurm_cluster.sh (gen's local test cluster); rewritten on every start.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$DBD_PID
LogFile=$DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=gen-local
StorageLoc=slurm_acct_db
EOF
    )
    link_system_file "$CONF" "$SYSTEM_CONF"
    link_system_file "$DBD_CONF" "$SYSTEM_DBD_CONF"
}

link_system_file() {  # link_system_file OURS SYSTEM: SYSTEM -> OURS, unless SYSTEM is someone else's file
    mkdir -p "$(dirname "$2")"
    if [ -e "$2" ] && [ "$(readlink -f "$2")" != "$(readlink -f "$1")" ] && ! grep -q "scripts/slurm_cluster.sh" "$2"; then
        say "$2 exists and is not ours; leaving it (and this cluster) alone"
        exit 1
    fi
    ln -sfn "$1" "$2"
}

start_accounting() {
    if ! alive "$DB_PID"; then
        if [ ! -d "$DIR/mariadb/mysql" ]; then
            mkdir -p "$DIR/mariadb"
            chown mysql:mysql "$DIR/mariadb"
            mariadb-install-db --user=mysql --datadir="$DIR/mariadb" --auth-root-authentication-method=socket \
                >"$DIR/log/mariadb-install.log" 2>&1
        fi
        mkdir -p "$DB_RUN"
        chown mysql:mysql "$DB_RUN"
        # setsid: its own session, so it outlives the shell (and process group) that started it, like
        # the SLURM daemons, which detach themselves.
        setsid /usr/sbin/mariadbd --user=mysql --datadir="$DIR/mariadb" --socket="$DB_SOCKET" --pid-file="$DB_PID" \
            --port="$DB_PORT" --bind-address=127.0.0.1 --log-error="$DB_RUN/mariadb.log" </dev/null >/dev/null 2>&1 &
        wait_for "MariaDB" 60 mariadb_ready
    fi
    mariadb --socket="$DB_SOCKET" -u root -e "
        CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'gen-local';
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'gen-local';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    alive "$DBD_PID" || /usr/sbin/slurmdbd
    wait_for "slurmdbd" 60 sacctmgr_ready
    sacctmgr -n -P list cluster format=cluster | grep -qx gen || sacctmgr -i add cluster gen >/dev/null
}

mariadb_ready() { mariadb --socket="$DB_SOCKET" -u root -e "SELECT 1" >/dev/null 2>&1; }
sacctmgr_ready() { sacctmgr -n list cluster >/dev/null 2>&1; }

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
        wait_for "the node to be idle" 60 node_idle || { status || true; exit 1; }
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

DAEMONS="munged:$MUNGE_PID mariadb:$DB_PID slurmdbd:$DBD_PID slurmctld:$CTLD_PID slurmd:$SLURMD_PID"
NOT_RUNNING=3  # status's exit code when the cluster is not running (LSB's "program is not running")

status() {  # one line unless it runs; exit 0 only when every daemon runs
    if ! command -v slurmctld >/dev/null || ! command -v sinfo >/dev/null; then
        echo "slurm_cluster: not installed (\`bash scripts/slurm_cluster.sh start\` installs it, as root)"
        return $NOT_RUNNING
    fi
    local running=() stopped=()
    for daemon in $DAEMONS; do
        if alive "${daemon#*:}"; then running+=("${daemon%%:*} (pid $(cat "${daemon#*:}"))")
        else stopped+=("${daemon%%:*}"); fi
    done
    if [ ${#running[@]} -eq 0 ]; then
        echo "slurm_cluster: stopped (\`bash scripts/slurm_cluster.sh start\` starts it)"
        return $NOT_RUNNING
    fi
    if [ ${#stopped[@]} -gt 0 ]; then
        echo "slurm_cluster: partly running: ${running[*]}; stopped: ${stopped[*]} (logs: $DIR/log)"
        return 1
    fi
    echo "slurm_cluster: running: ${running[*]}"
    sinfo 2>&1
}

case "${1:-}" in
    start)
        install_packages
        write_config
        start_munge
        start_accounting
        start_slurm
        say "running: partition $(sinfo -h -o %P | head -1), node $NODE idle (config $CONF, logs $DIR/log)"
        ;;
    stop)
        stop_daemon slurmd "$SLURMD_PID"
        stop_daemon slurmctld "$CTLD_PID"
        stop_daemon slurmdbd "$DBD_PID"
        stop_daemon mariadb "$DB_PID"
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
