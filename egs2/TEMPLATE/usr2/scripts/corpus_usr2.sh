#!/usr/bin/env bash
# The usr2.sh call of a corpus recipe (sourced by egs2/<corpus>/usr2/run.sh): one place for how
# a run.sh's --landmarks_dir reaches the two stages that use it.
#
#     . scripts/corpus_usr2.sh
#     corpus_usr2 "${landmarks_dir}" "${local_opts}" "" --nj "${nj}" --labelled_sets ... "${passthrough_args[@]}"

# corpus_usr2 LANDMARKS_DIR LOCAL_DATA_OPTS ROI_OPTS [USR2_OPTION...]: ./usr2.sh with
# local/data.sh options LOCAL_DATA_OPTS and mouth-ROI options ROI_OPTS, then USR2_OPTION...
# A given LANDMARKS_DIR (precomputed landmarks in the corpus layout) goes to local/data.sh,
# which writes data/lm.scp from it, and stage 2 reads that file instead of detecting faces.
corpus_usr2() {
    local landmarks_dir="$1" local_data_opts="$2" roi_opts="$3"
    shift 3
    if [ -n "${landmarks_dir}" ]; then
        local_data_opts+=" --landmarks_dir ${landmarks_dir}"
        roi_opts+="${roi_opts:+ }--landmarks data/lm.scp"
    fi
    ./usr2.sh --local_data_opts "${local_data_opts}" --roi_opts "${roi_opts}" "$@"
}
