#!/usr/bin/env bash
# Help text of the corpus run.sh options (sourced by egs2/<corpus>/usr2/run.sh): one wording
# for the options several recipes share, each with the default the calling script set.
#
#     help_message="Usage: $0 [options]
#       --setting S ...
#     $(. scripts/run_help.sh; corpus_options_help landmarks_dir max_len nj data_opts)"

# corpus_options_help <name>...: one line per option (its value in brackets), then what
# happens to every other option.
corpus_options_help() {
    local name what
    for name in "$@"; do
        case "${name}" in
            landmarks_dir) what="precomputed landmarks (corpus layout) instead of face detection" ;;
            *_landmarks_dir) what="precomputed landmarks of ${name%%_*} instead of face detection" ;;
            max_len) what="longest segment cut from long videos (LRS pretrain, VoxCeleb2), seconds" ;;
            valid_size) what="LRS3 trainval utterances held out for validation" ;;
            nj) what="data preparation jobs" ;;
            data_opts) what="more local/data.sh options" ;;
            *) echo "corpus_options_help: no help text for --${name}" >&2; return 1 ;;
        esac
        printf '  --%-24s %s [%s]\n' "${name}" "${what}" "${!name}"
    done
    echo "Every other option goes to usr2.sh (./usr2.sh --help), e.g. --stage 10, --ngpu 8,"
    echo "--pretrained_encoder FILE (start from a self-supervised encoder, usr2_import --encoder_only),"
    echo "--token_list FILE --bpemodel FILE (a given vocabulary; stage 5 skipped), --model_dir DIR (decode a given model)."
}
