#!/bin/bash
# harness.sh WORK REPO STEP... -- runs nova-docker's DevStack plugin the way
# stack.sh, unstack.sh and clean.sh do, with DevStack's functions as stubs.
#
# DEVSTACK_RELEASE (zed, 2025.1 or 2026.1) picks the DevStack whose behaviour
# the stubs play where the releases differ; each stub names the file and
# function of openstack/devstack it plays (branches unmaintained/zed,
# stable/2025.1, stable/2026.1).
#
# The stubs append one line per call the plugin makes to WORK/calls.log
# (arguments joined by a tab); DevStack's own writes (configure_glance,
# start_nova_compute, unit files) are not recorded. iniset/iniget write and
# read real ini files under WORK; docker and openstack keep their state in
# WORK/containers and WORK/glance-images.
# STEPs, in order: `stack:PHASE`, `unstack`, `clean` (source plugin.sh with that
# mode and phase), `configure:glance` (lib/glance's configure_glance, which runs
# before the plugin's phases), `start:SERVICE` (DevStack starting a service: for
# n-cpu lib/nova's start_nova_compute, which makes nova-cpu.conf from nova.conf
# and calls run_process).
# Environment: DEVSTACK_RELEASE, VIRT_DRIVER (docker), ENABLED_SERVICES,
# MISSING_COMMANDS (names `command -v` does not find, to play a fresh host),
# OPENSTACK_FAILS, NOVA_CPU_UUID, and any plugin setting.
# The stubs stand in for sudo's commands too (sudo is a stub); DevStack's variables are read by the plugin.
# shellcheck disable=SC2032,SC2034
set -o errexit -o nounset -o pipefail
WORK=$1 REPO=$2
shift 2
CALLS=$WORK/calls.log
: >> "$CALLS"

record() { local IFS=$'\t'; printf '%s\n' "$*" >> "$CALLS"; }

DEVSTACK_RELEASE=${DEVSTACK_RELEASE:-}
case $DEVSTACK_RELEASE in
    zed | 2025.1 | 2026.1) ;;
    *) echo "harness.sh: DEVSTACK_RELEASE must be zed, 2025.1 or 2026.1, not '$DEVSTACK_RELEASE'" >&2; exit 2 ;;
esac
# the global virtualenv (stackrc: GLOBAL_VENV, True by default on Debian and
# Ubuntu since 2023.2; Zed has none)
GLOBAL_VENV=False
[[ $DEVSTACK_RELEASE == zed ]] || GLOBAL_VENV=True

# ---------------------------------------------------------------- DevStack's variables
DEST=$WORK/opt/stack
DATA_DIR=$DEST/data
TOP_DIR=$DEST/devstack
STACK_USER=stack
VIRT_DRIVER=${VIRT_DRIVER-docker}
# stackrc: for VIRT_DRIVER docker|zun (all three releases)
[[ $VIRT_DRIVER != docker ]] || DOCKER_GROUP=${DOCKER_GROUP:-docker}
# DevStack's default services that matter here (stackrc), neutron included;
# from 2024.2 on the devstack Zuul job also enables openstack-cli-server
# (.zuul.yaml), so the harness does for those releases
if [[ -z ${ENABLED_SERVICES+set} ]]; then
    ENABLED_SERVICES=key,g-api,n-api,n-cond,n-sch,n-cpu,placement-api,q-svc
    [[ $DEVSTACK_RELEASE == zed ]] || ENABLED_SERVICES+=,openstack-cli-server
fi
NOVA_CONF_DIR=$WORK/etc/nova
NOVA_CONF=$NOVA_CONF_DIR/nova.conf
NOVA_CPU_CONF=$NOVA_CONF_DIR/nova-cpu.conf
NOVA_CPU_UUID=${NOVA_CPU_UUID:-}
# lib/nova: NOVA_BIN_DIR=$(get_python_exec_prefix) (inc/python): /usr/local/bin
# on Zed, $DEVSTACK_VENV/bin with GLOBAL_VENV (stackrc: DEVSTACK_VENV=$DATA_DIR/venv)
if [[ $GLOBAL_VENV == True ]]; then
    DEVSTACK_VENV=$DATA_DIR/venv
    NOVA_BIN_DIR=$DEVSTACK_VENV/bin
    # inc/python setup_devstack_virtualenv puts the venv first on PATH
    PATH=$DEVSTACK_VENV/bin:$PATH
else
    NOVA_BIN_DIR=/usr/local/bin
fi
GLANCE_API_CONF=$WORK/etc/glance/glance-api.conf
SYSTEMD_DIR=$WORK/etc/systemd/system
declare -A GITDIR=([nova-docker]=$REPO)
mkdir -p "$NOVA_CONF_DIR" "$(dirname "$GLANCE_API_CONF")" "$DATA_DIR" "$SYSTEMD_DIR"

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
function git_clone { record git_clone "$@"; }

# functions-common _common_systemd_pitfalls (all three releases): DevStack dies
# on a command with sudo in it or one that does not start with an absolute path.
function _common_systemd_pitfalls {
    local cmd=$1
    [[ ! $cmd =~ sudo ]] || die $LINENO "You are trying to use run_process with sudo"
    [[ $cmd =~ ^/ ]] || die $LINENO "The cmd=\"$cmd\" does not start with an absolute path"
}

# functions-common run_process SERVICE COMMAND [GROUP] [USER] [ENV_VARS] and
# _run_under_systemd/write_user_unit_file: the unit devstack@SERVICE.service,
# written to WORK/etc/systemd/system. With the global venv (2023.2 on) the unit carries
# Environment="PATH=$PATH" (then replaced by ENV_VARS when given: iniset sets
# the one Environment option), and a uwsgi command gets --venv $DEVSTACK_VENV.
function run_process {
    record run_process "$@"
    local service=$1 cmd=$2 group=${3:-} user=${4:-} env_vars=${5:-}
    is_service_enabled "$service" || return 0
    _common_systemd_pitfalls "$cmd"
    [[ -n $user ]] || user=$STACK_USER
    local unit=$SYSTEMD_DIR/devstack@$service.service
    _ini_write "$unit" Unit Description "Devstack devstack@$service.service"
    if [[ $GLOBAL_VENV == True ]]; then
        _ini_write "$unit" Service Environment "\"PATH=$PATH\""
        [[ ! $cmd =~ uwsgi ]] || cmd+=" --venv $DEVSTACK_VENV"
    fi
    _ini_write "$unit" Service User "$user"
    _ini_write "$unit" Service ExecStart "$cmd"
    [[ -z $env_vars ]] || _ini_write "$unit" Service Environment "$env_vars"
    [[ -z $group ]] || _ini_write "$unit" Service Group "$group"
}

# functions-common stop_process (all three releases): systemctl stop and
# disable of devstack@SERVICE.service when the service is enabled.
function stop_process { record stop_process "$@"; }

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

# stack.sh runs `async_runfunc configure_neutron_nova` (lib/neutron: iniset on
# $NOVA_CONF, and on each cell's conf) just before `run_phase stack
# post-config`, and waits for it only after the phase (async_wait
# configure_neutron_nova; its NOTE: "these two ini updates race"), in all three
# releases, whenever nova is enabled (neutron or not). DevStack's iniset
# rewrites the file (sed -i), so a plugin's iniset on nova.conf in post-config
# can lose neutron's options or its own: the harness refuses it.
ASYNC_NOVA_CONF_WRITER=''
function iniset {
    [[ $1 == -sudo ]] && shift
    record iniset "$@"
    if [[ -n $ASYNC_NOVA_CONF_WRITER && $1 == "$NOVA_CONF" ]]; then
        die $LINENO "iniset $1 races stack.sh's $ASYNC_NOVA_CONF_WRITER (post-config)"
    fi
    _ini_write "$@"
}

# _ini_write FILE SECTION OPTION VALUE: replaces the option or adds it to its
# section, creating the section (and the file) when missing.
function _ini_write {
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

# inidelete FILE SECTION OPTION
function _ini_delete {
    local file=$1 section=$2 option=$3 line in=0 out=()
    [[ -f $file ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ ^\[(.*)\]$ ]]; then
            in=0
            [[ ${BASH_REMATCH[1]} == "$section" ]] && in=1
        elif ((in)) && [[ $line =~ ^${option}[[:space:]]*= ]]; then
            continue
        fi
        out+=("$line")
    done < "$file"
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
# Glance's images, one name a line. `image create` records its arguments and
# the image data: from --file FILE (the file must exist then) or from stdin.
# From 2024.2 on, with openstack-cli-server enabled, stack.sh puts
# files/openstack-cli-server/openstack first on PATH (functions-common
# install_openstack_cli_server), and that client refuses `image create` without
# --file: it does not pass stdin to the server. OPENSTACK_FAILS="image create"
# makes that command fail (Glance refusing the upload).
function openstack {
    local images=$WORK/glance-images
    if [[ -n ${OPENSTACK_FAILS:-} && "$1 $2" == "$OPENSTACK_FAILS" ]]; then
        echo "openstack $1 $2: HTTP 500" >&2
        return 1
    fi
    if [[ $1 == image && $2 == show ]]; then
        grep -qx "$3" "$images" 2>/dev/null
    elif [[ $1 == image && $2 == create ]]; then
        local arg prev='' data=''
        for arg in "$@"; do
            [[ $prev == --file ]] && data="file=$(cat "$arg")"
            [[ $arg == --file=* ]] && data="file=$(cat "${arg#--file=}")"
            prev=$arg
        done
        if [[ -z $data ]]; then
            if [[ $DEVSTACK_RELEASE != zed ]] && is_service_enabled openstack-cli-server; then
                echo 'Image create without --file is not allowed in server mode' >&2
                return 1
            fi
            data="stdin=$(cat)"
        fi
        record openstack "$@" "$data"
        echo "${*: -1}" >> "$images"
    fi
}

# ---------------------------------------------------------------- DevStack's scripts
# lib/glance configure_glance, the part in glance-api.conf's sections the plugin
# writes to: 2025.1 on adds [image_format] require_image_format_match
# ($GLANCE_ENFORCE_IMAGE_FORMAT, True). Glance runs under uwsgi in all three
# (2026.1 dropped the standalone glance-api), and reads glance-api.conf there too.
function configure_glance {
    _ini_write "$GLANCE_API_CONF" DEFAULT debug True
    [[ $DEVSTACK_RELEASE == zed ]] || _ini_write "$GLANCE_API_CONF" image_format require_image_format_match True
    _ini_write "$GLANCE_API_CONF" glance_store default_backend fast
}

# lib/nova start_nova_compute for VIRT_DRIVER=docker (the same line in all three
# releases): nova-cpu.conf is a copy of nova.conf, then the cell's transport_url
# (CELLSV2_SETUP=superconductor, the default), no database; 2024.1 on writes
# $NOVA_CPU_UUID to $NOVA_CONF_DIR/compute_id; then
# `run_process n-cpu "$NOVA_BIN_DIR/nova-compute --config-file $NOVA_CPU_CONF" $DOCKER_GROUP`.
function start_nova_compute {
    cp "$NOVA_CONF" "$NOVA_CPU_CONF"
    local url
    url=$(iniget "$NOVA_CPU_CONF" DEFAULT transport_url)
    [[ -z $url ]] || _ini_write "$NOVA_CPU_CONF" DEFAULT transport_url "${url%/}/nova_cell1"
    _ini_delete "$NOVA_CPU_CONF" database connection
    _ini_delete "$NOVA_CPU_CONF" api_database connection
    if [[ $DEVSTACK_RELEASE == zed ]]; then
        _ini_write "$NOVA_CPU_CONF" DEFAULT reimage_timeout_per_gb 60
    else
        _ini_write "$NOVA_CPU_CONF" DEFAULT reimage_timeout_per_gb 180
        [[ -z $NOVA_CPU_UUID ]] || echo -n "$NOVA_CPU_UUID" > "$NOVA_CONF_DIR/compute_id"
    fi
    local old_path=$PATH
    export PATH=$NOVA_BIN_DIR:$PATH
    # (other drivers' branches, e.g. libvirt's $LIBVIRT_GROUP, are not played)
    local group=''
    [[ $VIRT_DRIVER != docker ]] || group=$DOCKER_GROUP
    run_process n-cpu "$NOVA_BIN_DIR/nova-compute --config-file $NOVA_CPU_CONF" "$group"
    export PATH=$old_path
}

# plugin settings are sourced first, in every script
# shellcheck source=/dev/null
source "$REPO/devstack/settings"
# shellcheck source=/dev/null
for step in "$@"; do
    case $step in
        stack:post-config)
            # is_service_enabled nova: any n-* service (functions-common)
            [[ ,$ENABLED_SERVICES =~ ,n- ]] && ASYNC_NOVA_CONF_WRITER=configure_neutron_nova
            source "$REPO/devstack/plugin.sh" stack post-config
            ASYNC_NOVA_CONF_WRITER=''
            ;;
        stack:*) source "$REPO/devstack/plugin.sh" stack "${step#stack:}" ;;
        unstack | clean) source "$REPO/devstack/plugin.sh" "$step" ;;
        configure:glance) configure_glance ;;
        start:n-cpu) start_nova_compute ;;
        start:*) run_process "${step#start:}" "$NOVA_BIN_DIR/${step#start:}" ;;
        *) echo "harness.sh: unknown step $step" >&2; exit 2 ;;
    esac
done
