#!/bin/bash
# harness.sh WORK REPO STEP... -- runs nova-docker's DevStack plugin the way
# stack.sh, unstack.sh and clean.sh do, with DevStack's functions as stubs.
#
# The stubs append one line per call to WORK/calls.log (arguments joined by a
# tab); iniset/iniget write and read real ini files under WORK; docker and
# openstack keep their state in WORK/containers and WORK/glance-images.
# STEPs, in order: `stack:PHASE`, `unstack`, `clean` (source plugin.sh with that
# mode and phase), `start:SERVICE` (DevStack starting a service: for n-cpu its
# start_nova_compute, which copies nova.conf to nova-cpu.conf and calls run_process).
# Environment: VIRT_DRIVER (docker), ENABLED_SERVICES, MISSING_COMMANDS (names
# `command -v` does not find, to play a fresh host), and any plugin setting.
# The stubs stand in for sudo's commands too (sudo is a stub); DevStack's variables are read by the plugin.
# shellcheck disable=SC2032,SC2034
set -o errexit -o nounset -o pipefail
WORK=$1 REPO=$2
shift 2
CALLS=$WORK/calls.log
: >> "$CALLS"

record() { local IFS=$'\t'; printf '%s\n' "$*" >> "$CALLS"; }

# ---------------------------------------------------------------- DevStack's variables
DEST=$WORK/opt/stack
STACK_USER=stack
VIRT_DRIVER=${VIRT_DRIVER-docker}
ENABLED_SERVICES=${ENABLED_SERVICES-key,g-api,n-api,n-cond,n-sch,n-cpu,placement-api}
NOVA_CONF_DIR=$WORK/etc/nova
NOVA_CONF=$NOVA_CONF_DIR/nova.conf
NOVA_CPU_CONF=$NOVA_CONF_DIR/nova-cpu.conf
NOVA_BIN_DIR=$DEST/bin
GLANCE_API_CONF=$WORK/etc/glance/glance-api.conf
declare -A GITDIR=([nova-docker]=$REPO)
mkdir -p "$NOVA_CONF_DIR" "$(dirname "$GLANCE_API_CONF")"

# ---------------------------------------------------------------- DevStack's functions
function die { local line=$1; shift; echo "die at line $line: $*" >&2; exit 1; }
function echo_summary { record echo_summary "$*"; }
function is_service_enabled {
    local s
    for s in "$@"; do
        [[ ,$ENABLED_SERVICES, == *,$s,* ]] && return 0
    done
    return 1
}
function install_package { record install_package "$@"; }
function add_user_to_group { record add_user_to_group "$@"; }
function start_service { record start_service "$@"; }
function stop_service { record stop_service "$@"; }
function run_process { record run_process "$@"; }
function stop_process { record stop_process "$@"; }
function git_clone { record git_clone "$@"; }

# iniget FILE SECTION OPTION
function iniget {
    local file=$1 section=$2 option=$3 line in=0
    [[ -f $file ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ ^\[(.*)\]$ ]]; then
            in=0
            [[ ${BASH_REMATCH[1]} == "$section" ]] && in=1
        elif ((in)) && [[ $line =~ ^${option}[[:space:]]*=[[:space:]]*(.*)$ ]]; then
            echo "${BASH_REMATCH[1]}"
            return 0
        fi
    done < "$file"
}

# iniset [-sudo] FILE SECTION OPTION VALUE: replaces the option or adds it to its
# section, creating the section (and the file) when missing.
function iniset {
    [[ $1 == -sudo ]] && shift
    record iniset "$@"
    local file=$1 section=$2 option=$3 value=$4 line in=0 seen=0 done=0
    local lines=() out=()
    [[ -f $file ]] && mapfile -t lines < "$file"
    for line in "${lines[@]}"; do
        if [[ $line =~ ^\[(.*)\]$ ]]; then
            if ((in && !done)); then
                # at the end of the section, before the blank lines that close it
                local blanks=0
                while ((${#out[@]} > blanks)) && [[ -z ${out[${#out[@]} - 1 - blanks]} ]]; do ((++blanks)); done
                out=("${out[@]:0:${#out[@]}-blanks}" "$option = $value" "${out[@]:${#out[@]}-blanks}")
                done=1
            fi
            in=0
            if [[ ${BASH_REMATCH[1]} == "$section" ]]; then in=1; seen=1; fi
        elif ((in)) && [[ $line =~ ^${option}[[:space:]]*= ]]; then
            if ((!done)); then out+=("$option = $value"); done=1; fi
            continue
        fi
        out+=("$line")
    done
    if ((!done)); then
        ((seen)) || out+=("[$section]")
        out+=("$option = $value")
    fi
    printf '%s\n' "${out[@]}" > "$file"
}

# ---------------------------------------------------------------- the host's commands
MISSING_COMMANDS=${MISSING_COMMANDS:-}
function command {
    if [[ ${1:-} == -v && " $MISSING_COMMANDS " == *" ${2:-} "* ]]; then return 1; fi
    builtin command "$@"
}
function hostname { echo devstack-1; }
function sudo { record sudo "$@"; "$@"; }
function install {   # no chown to a user this machine lacks
    local args=()
    while (($#)); do
        if [[ $1 == -o ]]; then shift 2; else args+=("$1"); shift; fi
    done
    builtin command install "${args[@]}"
}
function rm { record rm "$@"; builtin command rm "$@"; }
# containers: one "ID HOST" line each
function docker {
    record docker "$@"
    local file=$WORK/containers host='' arg
    case $1 in
        ps)
            for arg in "$@"; do [[ $arg == label=org.openstack.nova.host=* ]] && host=${arg#*host=}; done
            [[ -f $file ]] || return 0
            while read -r id h; do [[ $h == "$host" ]] && echo "$id"; done < "$file"
            ;;
        rm)
            shift 2 # rm -f
            for arg in "$@"; do
                grep -v "^$arg " "$file" > "$file.new" || true
                mv "$file.new" "$file"
            done
            ;;
        save) echo "tarball of $2" ;;
    esac
}
function openstack {
    local images=$WORK/glance-images
    if [[ $1 == image && $2 == show ]]; then
        grep -qx "$3" "$images" 2>/dev/null
    elif [[ $1 == image && $2 == create ]]; then
        record openstack "$@" "stdin=$(cat)"
        echo "${*: -1}" >> "$images"
    fi
}

# ---------------------------------------------------------------- DevStack's scripts
function start_nova_compute {
    cp "$NOVA_CONF" "$NOVA_CPU_CONF"
    run_process n-cpu "$NOVA_BIN_DIR/nova-compute --config-file $NOVA_CPU_CONF"
}

# plugin settings are sourced first, in every script
# shellcheck source=/dev/null
source "$REPO/devstack/settings"
# shellcheck source=/dev/null
for step in "$@"; do
    case $step in
        stack:*) source "$REPO/devstack/plugin.sh" stack "${step#stack:}" ;;
        unstack | clean) source "$REPO/devstack/plugin.sh" "$step" ;;
        start:n-cpu) start_nova_compute ;;
        start:*) run_process "${step#start:}" "$NOVA_BIN_DIR/${step#start:}" ;;
        *) echo "harness.sh: unknown step $step" >&2; exit 2 ;;
    esac
done
