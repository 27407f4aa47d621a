#!/usr/bin/env bash
# Option parser for the usr2 recipes, sourced by a script after it has set its defaults:
#
#     stage=1; train_config=conf/train.yaml
#     . utils/parse_options.sh          # consumes --stage 3 --train_config x.yaml ... from "$@"
#
# Rules (the Kaldi/ESPnet convention, own implementation):
#   --name value  and  --name=value  set the shell variable "name"; dashes in the name
#   become underscores (--stop-stage == --stop_stage). The variable must already exist
#   (a default was set), so a mistyped option is an error, not a silent new variable.
#   --help / -h prints "$help_message" (if the caller set one) and exits 0.
#   Parsing stops at the first argument that is not an option, or after "--"; the rest
#   stays in "$@" for the caller (this file shifts the caller's positional parameters,
#   which is why it must be sourced without arguments).
# A boolean default (true/false) only accepts true or false.
#
# Pass-through (a corpus run.sh in front of usr2.sh): when the caller has declared the array
# passthrough_args (passthrough_args=()), an option it has no variable for is not an
# error but appended to that array as given (--x=y, or --x y), for the next script to
# parse with the same rules:
#
#     setting=low; passthrough_args=()
#     . utils/parse_options.sh          # --setting high --stage 10 --ngpu=8
#     ./usr2.sh "${passthrough_args[@]}"  # gets --stage 10 --ngpu=8

__usr2_po_usage() {
    if [ -n "${help_message:-}" ]; then
        printf '%s\n' "${help_message}"
    else
        echo "$(basename "$0"): no help message; options are the variables set before parse_options.sh" >&2
    fi
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --help | -h)
            __usr2_po_usage
            exit 0
            ;;
        --)
            shift
            break
            ;;
        --*=*)
            __usr2_po_name="${1%%=*}"
            __usr2_po_value="${1#*=}"
            __usr2_po_given=("$1")
            shift
            ;;
        --?*)
            __usr2_po_name="$1"
            if [ "$#" -lt 2 ]; then
                echo "$(basename "$0"): option $1 needs a value" >&2
                exit 1
            fi
            __usr2_po_value="$2"
            __usr2_po_given=("$1" "$2")
            shift 2
            ;;
        *)
            break
            ;;
    esac
    __usr2_po_name="${__usr2_po_name#--}"
    __usr2_po_name="${__usr2_po_name//-/_}"
    if ! [[ "${__usr2_po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "$(basename "$0"): invalid option name --${__usr2_po_name}" >&2
        exit 1
    fi
    # ${var+x} distinguishes "set to empty" (a valid default) from "never set".
    if [ -z "$(eval "echo \${${__usr2_po_name}+x}")" ]; then
        if [[ "$(declare -p passthrough_args 2>/dev/null)" == "declare -a"* ]]; then
            passthrough_args+=("${__usr2_po_given[@]}")
            continue
        fi
        echo "$(basename "$0"): unknown option --${__usr2_po_name} (see --help)" >&2
        exit 1
    fi
    __usr2_po_old="$(eval "echo \"\${${__usr2_po_name}}\"")"
    if [ "${__usr2_po_old}" = true ] || [ "${__usr2_po_old}" = false ]; then
        if [ "${__usr2_po_value}" != true ] && [ "${__usr2_po_value}" != false ]; then
            echo "$(basename "$0"): --${__usr2_po_name} takes true or false, got '${__usr2_po_value}'" >&2
            exit 1
        fi
    fi
    printf -v "${__usr2_po_name}" '%s' "${__usr2_po_value}"
done
unset __usr2_po_name __usr2_po_value __usr2_po_old __usr2_po_given
true
