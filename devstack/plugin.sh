#!/bin/bash
# nova-docker DevStack plugin: with VIRT_DRIVER=docker, installs Docker Engine
# and the nova-docker agent, and runs the agent as DevStack's n-cpu.
#
#   stack install      docker.io, node, the stack user in group docker, build,
#                      the built agent into $NOVA_DOCKER_PREFIX (/usr/lib/nova-docker)
#   stack post-config  compute_driver and [docker] options in nova-docker.conf,
#                      Glance accepts container_format docker, n-cpu's command
#                      becomes the agent
#   stack extra        uploads $NOVA_DOCKER_IMAGES to Glance
#   unstack            stops the agent (and this host's instance containers)
#   clean              removes this host's instance containers and the agent's config
#
# Sourced by DevStack as `plugin.sh MODE PHASE` in stack.sh's own shell, so the
# functions defined here stay defined for the rest of the run.
#
# Works with the DevStack of Zed, 2025.1 and 2026.1 (lib/nova, lib/glance,
# functions-common of each; test/unit/devstack/harness.sh plays them). Where
# they differ: NOVA_BIN_DIR is the global venv's bin from 2023.2 on (the agent
# command does not use it), devstack@ units carry the venv's PATH, the devstack
# job's openstack-cli-server (2024.2 on) takes image data only from a file, and
# configure_glance writes [image_format] require_image_format_match (2025.1 on).

# Save trace setting
_XTRACE_NOVA_DOCKER=$(set +o | grep xtrace)
set +o xtrace

# The compute host name the agent registers (nova.conf's host, else the hostname).
function nova_docker_host {
    local host
    host=$(iniget "${NOVA_CPU_CONF:-$NOVA_CONF}" DEFAULT host 2>/dev/null || true)
    [[ -n $host ]] || host=$(iniget "$NOVA_CONF" DEFAULT host 2>/dev/null || true)
    echo "${host:-$(hostname)}"
}

function nova_docker_node {
    command -v "$NOVA_DOCKER_NODE" || echo "$NOVA_DOCKER_NODE"
}

# NOVA_DOCKER_NODE runs and is >= 20.12 (install.sh's NODE_MIN)
function nova_docker_node_suitable {
    local node version
    node=$(command -v "$NOVA_DOCKER_NODE") || return 1
    version=$("$node" -p 'process.versions.node' 2>/dev/null) || return 1
    printf '%s\n%s\n' 20.12 "$version" | sort -C -V
}

# The node in use comes with its own npm (a Node.js build's bin/npm, which
# install.sh uses), or there is one on PATH.
function nova_docker_has_npm {
    local node
    node=$(nova_docker_node)
    [[ -e $(dirname "$node")/npm || -e $(dirname "$(readlink -f "$node")")/npm ]] || command -v npm >/dev/null
}

# Docker Engine from the distribution; node: NOVA_DOCKER_NODE when it is new
# enough, else the one install.sh --install-node picks or installs (a node
# >= 20.12 on PATH, else Node.js 22 from the npm registry under
# NOVA_DOCKER_PREFIX: Debian 12's nodejs is 18, too old); npm only when the node
# has none; the stack user in group docker (systemd gives service processes
# their user's groups), the build in this checkout, then the built agent
# installed where n-cpu runs it from (root's, readable by all).
function install_nova_docker {
    command -v dockerd >/dev/null || install_package docker.io
    if ! nova_docker_node_suitable; then
        # its last line is the node's path; the unsuitable one is not passed on (install.sh would refuse it)
        NOVA_DOCKER_NODE=$(sudo env NOVA_DOCKER_NODE= NOVA_DOCKER_PREFIX="$NOVA_DOCKER_PREFIX" \
            bash "$NOVA_DOCKER_DIR/install.sh" --install-node | tail -n 1)
        nova_docker_node_suitable ||
            die $LINENO "nova-docker: no node >= 20.12 (install.sh --install-node gave '$NOVA_DOCKER_NODE')"
    fi
    nova_docker_has_npm || install_package npm
    add_user_to_group "$STACK_USER" "$DOCKER_GROUP"
    start_service docker
    NOVA_DOCKER_NODE=$(nova_docker_node) bash "$NOVA_DOCKER_DIR/install.sh" --build ||
        die $LINENO "nova-docker: build failed (install.sh --build)"
    sudo env NOVA_DOCKER_NODE="$(nova_docker_node)" NOVA_DOCKER_PREFIX="$NOVA_DOCKER_PREFIX" \
        bash "$NOVA_DOCKER_DIR/install.sh" --install-agent ||
        die $LINENO "nova-docker: installing the agent failed (install.sh --install-agent)"
}

# Appends docker to Glance's container formats (keeping the configured ones).
function configure_glance_for_nova_docker {
    local formats
    formats=$(iniget "$GLANCE_API_CONF" image_format container_formats)
    # Glance's default list, which DevStack leaves unset
    formats=${formats:-ami,ari,aki,bare,ovf,ova,docker,compressed}
    if [[ ,$formats, != *,docker,* ]]; then
        formats=$formats,docker
    fi
    iniset "$GLANCE_API_CONF" image_format container_formats "$formats"
}

function configure_nova_docker {
    if [[ ! -e $NOVA_DOCKER_CONF ]]; then
        sudo install -D -m 0644 -o "$STACK_USER" "$NOVA_DOCKER_DIR/etc/nova-docker.conf.sample" "$NOVA_DOCKER_CONF"
    fi
    # compute_driver goes into the agent's own file (read after nova-cpu.conf),
    # not nova.conf: stack.sh runs configure_neutron_nova in the background
    # across post-config (async_runfunc ... async_wait, every release), and two
    # inisets (sed -i) on one file can each lose the other's change
    iniset "$NOVA_DOCKER_CONF" DEFAULT compute_driver "$NOVA_DOCKER_COMPUTE_DRIVER"
    iniset "$NOVA_DOCKER_CONF" docker host_url "$NOVA_DOCKER_HOST_URL"
    iniset "$NOVA_DOCKER_CONF" docker pull_policy "$NOVA_DOCKER_PULL_POLICY"
    if [[ -n $NOVA_DOCKER_REGISTRY_URL ]]; then
        iniset "$NOVA_DOCKER_CONF" docker registry_url "$NOVA_DOCKER_REGISTRY_URL"
    fi
    if is_service_enabled g-api; then
        configure_glance_for_nova_docker
    fi
    nova_docker_replace_n_cpu
}

# The agent's command for the n-cpu command DevStack built: same config files
# (DevStack picks them: nova-cpu.conf, a cell's conf), plus the agent's own.
function nova_docker_agent_command {
    local words word files=() i
    read -ra words <<< "$1"
    for ((i = 0; i < ${#words[@]}; i++)); do
        word=${words[i]}
        if [[ $word == --config-file ]]; then
            files+=("${words[i + 1]:-}")
        elif [[ $word == --config-file=* ]]; then
            files+=("${word#--config-file=}")
        fi
    done
    [[ ${#files[@]} -gt 0 ]] || files=("${NOVA_CPU_CONF:-$NOVA_CONF}")
    local cmd
    cmd="$(nova_docker_node) $NOVA_DOCKER_NODE_FLAGS $NOVA_DOCKER_PREFIX/current/dist/src/cli.js compute"
    [[ -z ${NOVA_DOCKER_ENV:-} ]] || cmd="/usr/bin/env $NOVA_DOCKER_ENV $cmd"
    for word in "${files[@]}" "$NOVA_DOCKER_CONF"; do
        cmd+=" --config-file $word"
    done
    echo "$cmd"
}

# DevStack's start_nova_compute prepares nova-cpu.conf and then calls
# `run_process n-cpu "<nova-compute command>"`: wrapping run_process swaps
# only that command, so everything else DevStack does for n-cpu still happens.
function nova_docker_replace_n_cpu {
    declare -F _nova_docker_devstack_run_process >/dev/null && return 0
    local original
    original=$(declare -f run_process)
    eval "_nova_docker_devstack_run_process${original#run_process}"
    function run_process {
        if [[ $1 == n-cpu ]]; then
            # no group: under systemd the stack user's groups (docker) apply,
            # and node stays the main process, so SIGTERM reaches the agent;
            # user and env_vars pass through (NOVA_DOCKER_ENV goes into the
            # command: env_vars would replace the unit's PATH from 2023.2 on)
            _nova_docker_devstack_run_process n-cpu "$(nova_docker_agent_command "$2")" "" "${@:4}"
        else
            _nova_docker_devstack_run_process "$@"
        fi
    }
}

# Uploads each image of $NOVA_DOCKER_IMAGES as `docker save` tarball, once.
# The tarball goes through a file: the devstack job's openstack-cli-server
# (2024.2 on) refuses `image create` without --file, as its client does not
# pass stdin on. The file is in DATA_DIR (an image can outgrow a tmpfs /tmp),
# written by the stack user's shell, so the server (the stack user) reads it.
function upload_nova_docker_images {
    local image name file
    for image in $NOVA_DOCKER_IMAGES; do
        name=${image%%@*}
        if openstack image show "$name" >/dev/null 2>&1; then
            continue
        fi
        sudo docker pull "$image"
        file=$(mktemp "${DATA_DIR:-/tmp}/nova-docker-image.XXXXXX")
        # shellcheck disable=SC2024 # the redirect is the stack user's on purpose
        if ! sudo docker save "$image" > "$file" ||
            ! openstack image create --public --container-format docker --disk-format raw \
                --file "$file" "$name"; then
            rm -f "$file"
            die $LINENO "nova-docker: uploading $image to Glance failed"
        fi
        rm -f "$file"
    done
}

function remove_nova_docker_containers {
    local ids
    ids=$(sudo docker ps -aq --filter label=org.openstack.nova.managed-by=nova-docker \
        --filter "label=org.openstack.nova.host=$(nova_docker_host)" 2>/dev/null || true)
    if [[ -n $ids ]]; then
        # shellcheck disable=SC2086 # one id per word
        sudo docker rm -f $ids >/dev/null
    fi
}

function stop_nova_docker {
    stop_process n-cpu
    if [[ ${NOVA_DOCKER_REMOVE_CONTAINERS_ON_UNSTACK,,} == true ]]; then
        remove_nova_docker_containers
    fi
}

function cleanup_nova_docker {
    remove_nova_docker_containers
    sudo rm -f "$NOVA_DOCKER_CONF"
}

if [[ ${VIRT_DRIVER:-} == docker ]] && is_service_enabled n-cpu; then
    if [[ $1 == stack && ${2:-} == install ]]; then
        echo_summary "Installing nova-docker"
        install_nova_docker
    elif [[ $1 == stack && ${2:-} == post-config ]]; then
        echo_summary "Configuring nova-docker"
        configure_nova_docker
    elif [[ $1 == stack && ${2:-} == extra ]]; then
        if [[ -n $NOVA_DOCKER_IMAGES ]]; then
            echo_summary "Uploading docker images to Glance"
            upload_nova_docker_images
        fi
    fi
    if [[ $1 == unstack ]]; then
        stop_nova_docker
    fi
    if [[ $1 == clean ]]; then
        cleanup_nova_docker
    fi
fi

# Restore xtrace
$_XTRACE_NOVA_DOCKER
