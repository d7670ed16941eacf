#!/usr/bin/env bash
# A real single-node SLURM on this machine, for the opt-in `slurm` tests (pytest -m slurm).
#
#   tests/slurm/start_local_slurm.sh [start]   install (apt, once) and start munge + slurmctld + slurmd
#   tests/slurm/start_local_slurm.sh restart   stop slurmctld + slurmd, then start them with an empty queue (CI)
#   tests/slurm/start_local_slurm.sh status    show what is running and the node state
#   tests/slurm/start_local_slurm.sh stop      stop the daemons this script started
#   tests/slurm/start_local_slurm.sh clean     stop, then remove the config and state this script wrote
#
# Idempotent: `start` on a healthy running cluster only prints its state. Whenever this script starts
# slurmctld it clears the saved job state (`slurmctld -c`): jobs recovered from before a restart have no
# processes left, yet would hold the node's CPUs and fake GPUs until their time limit and keep every new
# test job pending. Needs root and Debian/Ubuntu
# (apt-get). Slurm runs without systemd or cgroups (proctrack/linuxproc, task/none), without slurmdbd
# (so `sacct` does not work: the slurm-ci profile uses `slurm-status-command: squeue`), with one
# partition `debug`, $REFINE_SLURM_CPUS CPUs (default 2) and $REFINE_SLURM_GPUS fake GPUs (default 2):
# gres/gpu backed by character devices made with mknod, so Slurm sets CUDA_VISIBLE_DEVICES for jobs
# that ask for GPUs although there are none.
#
# The config must live at the default /etc/slurm/slurm.conf: the Snakemake jobstep plugin strips
# SLURM_* variables (SLURM_CONF too) before its inner `srun`. The script refuses to overwrite a
# slurm.conf it did not write. Non-default ports (REFINE_SLURMCTLD_PORT, REFINE_SLURMD_PORT; defaults
# 16817/16818) keep it clear of another Slurm on the same box.
set -euo pipefail

ACTION="${1:-start}"
STATE_DIR="${REFINE_SLURM_DIR:-/var/lib/refine-slurm}"
CTLD_PORT="${REFINE_SLURMCTLD_PORT:-16817}"
SLURMD_PORT="${REFINE_SLURMD_PORT:-16818}"
NCPUS="${REFINE_SLURM_CPUS:-2}"
NGPUS="${REFINE_SLURM_GPUS:-2}"
WAIT_S="${REFINE_SLURM_WAIT_S:-60}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
GRES_CONF="$CONF_DIR/gres.conf"
MARKER="# written by refine tests/slurm/start_local_slurm.sh"
HOST="$(hostname -s)"
T0=$EPOCHREALTIME

say() { printf '[local-slurm %5.1fs] %s\n' "$(awk -v a="$EPOCHREALTIME" -v b="$T0" 'BEGIN{print a-b}')" "$*"; }
die() { say "ERROR: $*" >&2; exit 1; }

pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo '?'; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { timeout 10 sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -1 || true; }

show_status() {
    for d in munged slurmctld slurmd; do
        case $d in
            munged) pf=/run/munge/munged.pid ;;
            *) pf="$STATE_DIR/run/$d.pid" ;;
        esac
        if pid_alive "$pf"; then say "$d running (pid $(cat "$pf"))"; else say "$d not running"; fi
    done
    if command -v sinfo >/dev/null; then
        timeout 10 sinfo -N -o '%N %P %T %c %m %G' 2>&1 | sed 's/^/    /' || true
    fi
}

install_packages() {
    local missing=()
    for bin in slurmctld slurmd sinfo sbatch munged; do
        command -v "$bin" >/dev/null || missing+=("$bin")
    done
    if ((${#missing[@]} == 0)); then
        say "packages already installed (slurm $(pkg_version slurmctld), munge $(pkg_version munge))"
        return
    fi
    [[ $(id -u) == 0 ]] || die "not root: cannot apt-get install slurmctld slurmd slurm-client munge"
    command -v apt-get >/dev/null || die "no apt-get: install slurmctld, slurmd, slurm-client and munge yourself"
    say "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Daemons must not be started by package scripts; this script starts them with its own config.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
    fi
    timeout 600 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
    ((added_policy)) && rm -f "$policy"
    say "installed slurm $(pkg_version slurmctld), munge $(pkg_version munge)"
}

start_munge() {
    if pid_alive /run/munge/munged.pid; then
        say "munged already running (pid $(cat /run/munge/munged.pid))"
        return
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey -c -f -k /etc/munge/munge.key; else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none; fi
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    runuser -u munge -- /usr/sbin/munged
    touch "$STATE_DIR/run/munged.ours"
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null | unmunge >/dev/null || die "munge does not work"
    say "munged started (pid $(cat /run/munge/munged.pid))"
}

write_config() {
    if [[ -e $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script; move it away first"
    fi
    mkdir -p "$CONF_DIR" "$STATE_DIR"/{state,spool,log,run,dev}
    # Fake GPUs: gres needs distinct character devices (regular files, or Count= without File=, leave the
    # node INVAL: "gres/gpu count reported lower than configured"). Minors of /dev/null, zero, full, ...
    local minors=(3 5 7 8 9 3 5 7) files=() i
    ((NGPUS >= 0 && NGPUS <= 4)) || die "REFINE_SLURM_GPUS must be 0..4"
    for ((i = 0; i < NGPUS; i++)); do
        [[ -c $STATE_DIR/dev/fakegpu$i ]] || mknod "$STATE_DIR/dev/fakegpu$i" c 1 "${minors[$i]}"
        files+=("$STATE_DIR/dev/fakegpu$i")
    done
    local mem_kb mem_mb
    mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
    mem_mb=$((mem_kb * 3 / 4 / 1024))
    ((mem_mb > 16000)) && mem_mb=16000
    local gres_line="" gres_types=""
    if ((NGPUS > 0)); then gres_line=" Gres=gpu:$NGPUS"; gres_types="GresTypes=gpu"; fi
    local new
    new=$(cat <<EOF
$MARKER
ClusterName=refine-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SlurmdParameters=config_overrides
MinJobAge=600
ReturnToService=2
KillWait=5
InactiveLimit=0
$gres_types
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPUS RealMemory=$mem_mb$gres_line State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
    CONFIG_CHANGED=0
    if [[ ! -e $CONF ]] || [[ "$(cat "$CONF")" != "$new" ]]; then
        printf '%s\n' "$new" >"$CONF"
        CONFIG_CHANGED=1
        say "wrote $CONF (node $HOST: $NCPUS CPUs, ${mem_mb} MB, $NGPUS fake GPUs; ports $CTLD_PORT/$SLURMD_PORT)"
    fi
    local gres_new="$MARKER"
    for f in "${files[@]}"; do gres_new+=$'\n'"NodeName=$HOST Name=gpu File=$f"; done
    if [[ ! -e $GRES_CONF ]] || [[ "$(cat "$GRES_CONF")" != "$gres_new" ]]; then
        [[ -e $GRES_CONF ]] && ! grep -qF "$MARKER" "$GRES_CONF" && die "$GRES_CONF was not written by this script"
        printf '%s\n' "$gres_new" >"$GRES_CONF"
        CONFIG_CHANGED=1
        say "wrote $GRES_CONF"
    fi
}

stop_daemons() {
    local d pf
    for d in slurmd slurmctld; do
        pf="$STATE_DIR/run/$d.pid"
        if pid_alive "$pf"; then
            kill "$(cat "$pf")"
            for _ in $(seq 50); do pid_alive "$pf" || break; sleep 0.1; done
            say "stopped $d"
        fi
    done
    [[ ${1:-} == slurm-only ]] && return
    if [[ -e $STATE_DIR/run/munged.ours ]] && pid_alive /run/munge/munged.pid; then
        kill "$(cat /run/munge/munged.pid)" && say "stopped munged"
        rm -f "$STATE_DIR/run/munged.ours"
    fi
}

start() {
    if command -v sinfo >/dev/null && [[ -e $CONF ]] && grep -qF "$MARKER" "$CONF" \
        && pid_alive "$STATE_DIR/run/slurmctld.pid" && pid_alive "$STATE_DIR/run/slurmd.pid" \
        && [[ "$(node_state)" =~ ^(idle|mixed|allocated) ]]; then
        write_config
        if ((CONFIG_CHANGED == 0)); then
            say "already running; nothing to do"
            show_status
            return
        fi
        say "config changed: restarting"
        stop_daemons slurm-only
    fi
    install_packages
    mkdir -p "$STATE_DIR/run"
    write_config
    start_munge
    # A stale daemon from an earlier run with another config: restart it.
    for d in slurmctld slurmd; do
        if pid_alive "$STATE_DIR/run/$d.pid"; then kill "$(cat "$STATE_DIR/run/$d.pid")"; sleep 1; fi
    done
    slurmctld -c || die "slurmctld failed; see $STATE_DIR/log/slurmctld.log"
    say "slurmctld started (job queue cleared)"
    slurmd || die "slurmd failed; see $STATE_DIR/log/slurmd.log"
    say "slurmd started"
    local state="" deadline=$(($(date +%s) + WAIT_S))
    while (($(date +%s) < deadline)); do
        state=$(node_state)
        case "$state" in
            idle* | mixed* | allocated*) break ;;
            down* | drain* | inval*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    if ! [[ "$state" =~ ^(idle|mixed|allocated) ]]; then
        say "node $HOST did not become idle within ${WAIT_S}s (state: '${state:-none}')"
        tail -n 20 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 || true
        exit 1
    fi
    say "node $HOST is $state"
    show_status
}

case "$ACTION" in
    start) start ;;
    status) show_status ;;
    restart)
        stop_daemons slurm-only
        start
        ;;
    stop) stop_daemons ;;
    clean)
        stop_daemons
        for f in "$CONF" "$GRES_CONF"; do
            if [[ -e $f ]] && grep -qF "$MARKER" "$f"; then rm -f "$f" && say "removed $f"; fi
        done
        rm -rf "$STATE_DIR" && say "removed $STATE_DIR"
        ;;
    *) die "usage: $0 [start|restart|status|stop|clean]" ;;
esac
