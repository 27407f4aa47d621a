#!/usr/bin/env bash
# The usr2.sh options of training in the paper's settings (sourced by egs2/<corpus>/usr2/run.sh
# of LRS2, LRS3 and the Huge data): one place for what these recipes share (paper Appendix A),
# so that a change to one of them reaches every recipe.
#
#     . scripts/paper_training.sh
#     paper_training_opts "${model}" "${lab_frames}" "${unlab_frames}"
#     ./usr2.sh --labelled_sets ... "${training_opts[@]}" "${passthrough_args[@]}"

# paper_training_opts MODEL LABELLED_FRAMES UNLABELLED_FRAMES: sets the array training_opts to
# utterances of 10 to 400 video frames, 1000 BPE units, the model config
# conf/train_usr2_<MODEL>.yaml with LABELLED_FRAMES / UNLABELLED_FRAMES video frames per GPU in
# a labelled / unlabelled batch (the setting's, paper Table 6), and beam-30 decoding.
paper_training_opts() {
    # read by the run.sh that sourced this file
    # shellcheck disable=SC2034
    training_opts=(
        --min_frames 10
        --max_frames 400
        --nbpe 1000
        --train_config "conf/train_usr2_$1.yaml"
        --labelled_batch_frames "$2"
        --unlabelled_batch_frames "$3"
        --inference_config conf/decode_beam30.yaml
    )
}
