"""USR2Task: USR 2.0 in ESPnet's task system.

Every swappable part of the model is a ``ClassChoices`` entry chosen in the YAML config:
``audio_frontend``, ``video_frontend``, ``fusion``, ``encoder``, ``decoder``,
``augmentation``, ``semi`` and ``model``. Data names: ``speech`` (16 kHz ``sound``), ``video``
(``roi_video``, mouth crops) and ``text``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Callable, Collection, Dict, List, Optional, Tuple

import numpy as np
import torch
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.tasks.abs_task import AbsTask
from espnet2.torch_utils.initialize import initialize
from espnet2.train.abs_espnet_model import AbsESPnetModel
from espnet2.train.class_choices import ClassChoices
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.train.distributed_utils import DistributedOption
from espnet2.utils.nested_dict_action import NestedDictAction
from espnet2.utils.types import str2bool, str_or_none

import espnet_usr2.data.roi_video_type  # noqa: F401  (registers the roi_video data type)
from espnet_usr2.data.preprocessor import USR2Preprocessor
from espnet_usr2.model.augmentation import StudentAugmentation
from espnet_usr2.model.comat import build_comat
from espnet_usr2.model.decoder import USR2TransformerDecoder
from espnet_usr2.model.encoder import RelPosTransformerEncoder
from espnet_usr2.model.espnet_model import ESPnetUSR2Model
from espnet_usr2.model.frontends import (
    AbsModalityFrontend,
    LogMelAudioFrontend,
    ResNet1DAudioFrontend,
    ResNet3DVideoFrontend,
)
from espnet_usr2.model.fusion import ConcatProjectionFusion
from espnet_usr2.model.pretrain import USR2PretrainModel
from espnet_usr2.model.pretrain_probes import SupervisedProbes
from espnet_usr2.samplers.semi_iter_factory import (
    SEMI_SUPERVISED_BATCH_TYPE,
    add_semi_supervised_arguments,
    build_semi_supervised_iter_factory,
)
from espnet_usr2.semi.objective import USR1Objective, USR2Objective
from espnet_usr2.train.compilation import TimeBucketedCollate
from espnet_usr2.train.optimizer_options import fused_on_cuda
from espnet_usr2.train.scheduler import register_with_espnet as register_scheduler
from espnet_usr2.train.trainer import USR2Trainer

register_scheduler()  # "scheduler: warmupcosine" (length derived from the run)

audio_frontend_choices = ClassChoices(
    name="audio_frontend",
    classes=dict(resnet1d=ResNet1DAudioFrontend, logmel=LogMelAudioFrontend),
    type_check=AbsModalityFrontend,
    default="resnet1d",
)
video_frontend_choices = ClassChoices(
    name="video_frontend",
    classes=dict(resnet3d=ResNet3DVideoFrontend),
    type_check=AbsModalityFrontend,
    default="resnet3d",
)
fusion_choices = ClassChoices(
    name="fusion",
    classes=dict(concat=ConcatProjectionFusion),
    type_check=torch.nn.Module,
    default="concat",
)
encoder_choices = ClassChoices(
    name="encoder",
    classes=dict(relpos_transformer=RelPosTransformerEncoder),
    default="relpos_transformer",
)
decoder_choices = ClassChoices(
    name="decoder",
    classes=dict(transformer=USR2TransformerDecoder),
    default="transformer",
)
augmentation_choices = ClassChoices(
    name="augmentation",
    classes=dict(usr=StudentAugmentation),
    type_check=torch.nn.Module,
    default="usr",
)
semi_choices = ClassChoices(
    name="semi",
    classes=dict(usr2=USR2Objective, usr1=USR1Objective),
    type_check=torch.nn.Module,
    default=None,
    optional=True,
)
model_choices = ClassChoices(
    name="model",
    classes=dict(usr2=ESPnetUSR2Model, usr2_pretrain=USR2PretrainModel),
    type_check=AbsESPnetModel,
    default="usr2",
)


class USR2Task(AbsTask):
    """ESPnet task of the unified A / V / AV model (``python -m espnet_usr2.bin.usr2_train``).

    Besides ESPnet's common training options, the YAML config (or command line) sets:

    Args:
        token_list: token file or list; ``<blank>`` first, ``<sos/eos>`` last (ESPnet's layout);
            not needed by ``model: usr2_pretrain`` (self-supervised pre-training reads no text).
        init: parameter initialisation (None: PyTorch's defaults).
        sample_rate: audio sampling rate; with ``video_fps`` it fixes the samples per video
            frame that the audio frontend must produce (16000 / 25 = 640).
        video_fps: frame rate of the mouth-ROI videos.
        av_length_tolerance: largest audio / video length difference, in video frames, that
            is trimmed away; larger ones are errors naming the utterance.
        use_preprocessor, token_type, bpemodel, non_linguistic_symbols, cleaner: text
            tokenisation by ESPnet's ``CommonPreprocessor`` (``token_type``: bpe, char, word).
        audio_frontend, video_frontend, fusion, encoder, decoder, augmentation, model: the
            class of each part (one ``ClassChoices`` each) and its ``<name>_conf`` keyword
            arguments; ``model_conf`` keys are the arguments of :class:`ESPnetUSR2Model`
            (``model: usr2``) or of :class:`~espnet_usr2.model.pretrain.USR2PretrainModel`
            (``model: usr2_pretrain``, self-supervised pre-training: no decoder, no text).
        semi: ``usr2`` or ``usr1`` turns on semi-supervised training; ``semi_conf`` keys are
            the arguments of :class:`~espnet_usr2.semi.objective.USR2Objective` /
            :class:`~espnet_usr2.semi.objective.USR1Objective`.
        comat_conf: COMAT, a loss distilling a frozen pre-trained language model into the
            CTC branch (:mod:`espnet_usr2.model.comat`); empty (the default) = off; read by
            :meth:`ESPnetUSR2Model.attach_comat`, which lists the keys.
        teacher_conf: the EMA teacher's options, read by
            :meth:`ESPnetUSR2Model.attach_semi_supervised` (and by pre-training's encoder teacher).
        sync_batchnorm: SyncBatchNorm for student and teacher on multi-GPU runs (USR's setting).
        probe_conf: pre-training's supervised probes
            (:class:`~espnet_usr2.model.pretrain_probes.SupervisedProbes`); empty = off.
        unlabelled_*, labelled_batch_frames, unlabelled_batch_frames, batch_type
            ``semi_supervised``: the unlabelled data and the paired sampler
            (``samplers/semi_iter_factory.py``).
    """

    num_optimizers: int = 1
    class_choices_list = [
        audio_frontend_choices,
        video_frontend_choices,
        fusion_choices,
        encoder_choices,
        decoder_choices,
        augmentation_choices,
        semi_choices,
        model_choices,
    ]
    trainer = USR2Trainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        group = parser.add_argument_group(description="Task related")
        group.add_argument(
            "--token_list",
            type=str_or_none,
            default=None,
            help="A text file mapping token ids to tokens (one token per line); required "
            "except for self-supervised pre-training (model: usr2_pretrain)",
        )
        group.add_argument(
            "--init",
            type=lambda x: str_or_none(x.lower()),
            default=None,
            choices=["chainer", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", None],
            help="Parameter initialisation (None: PyTorch's defaults)",
        )
        group.add_argument("--sample_rate", type=int, default=16000, help="Audio sampling rate (Hz)")
        group.add_argument("--video_fps", type=int, default=25, help="Video frame rate of the mouth ROIs")
        group.add_argument(
            "--teacher_conf",
            action=NestedDictAction,
            default=dict(),
            help="EMA teacher options (semi-supervised training and pre-training): "
            "momentum_start (0.998), momentum_end (1.0), total_steps (0: max_epoch x steps "
            "per epoch), validate (true: validation also reports the teacher's "
            "<stat>_teacher), batch_norm (batch: the teacher's own batch statistics, as USR; "
            "running: eval mode with the student's running statistics copied every step)",
        )
        group.add_argument(
            "--probe_conf",
            action=NestedDictAction,
            default=dict(),
            help="Self-supervised pre-training only: supervised probes (CTC heads and the "
            "configured decoder on the detached encoder features, as USR's pre-training) "
            "trained on the transcripts in the data; empty = off, e.g. {weight: 1.0}; keys: "
            "weight (1.0), ctc_dropout (0.1), lsm_weight (0.1); needs --token_list",
        )
        group.add_argument(
            "--sync_batchnorm",
            type=str2bool,
            default=False,
            help="Under multi-GPU DDP, synchronise the batch-norm statistics of the student "
            "and of the EMA teacher (batch_norm: batch) across ranks (SyncBatchNorm), as "
            "USR's training does; ignored on one device and on CPU",
        )
        group.add_argument(
            "--comat_conf",
            action=NestedDictAction,
            default=dict(),
            help="COMAT (an optional loss distilling a frozen pre-trained LM into the CTC "
            "branch; empty = off): plm (espnet_lm | hf), lm_train_config, lm_file, hf_dir, "
            "weight (1.0), compress_factor (2), modalities; see espnet_usr2/model/comat.py",
        )
        group.add_argument(
            "--av_length_tolerance",
            type=float,
            default=2.0,
            help="Largest audio/video length difference (in video frames) that is "
            "absorbed by trimming; larger differences are errors",
        )

        group = parser.add_argument_group(description="Preprocess related")
        group.add_argument(
            "--use_preprocessor", type=str2bool, default=True, help="Tokenise text and align audio to video on the fly"
        )
        group.add_argument(
            "--token_type", type=str, default="bpe", choices=["bpe", "char", "word"], help="Text tokenisation unit"
        )
        group.add_argument("--bpemodel", type=str_or_none, default=None, help="SentencePiece model file")
        group.add_argument(
            "--non_linguistic_symbols", type=str_or_none, default=None, help="non_linguistic_symbols file path"
        )
        group.add_argument(
            "--cleaner",
            type=str_or_none,
            default=None,
            choices=[None, "tacotron", "jaconv", "vietnamese"],
            help="Text cleaner",
        )

        for class_choices in cls.class_choices_list:
            class_choices.add_arguments(group)

        # --unlabelled_* data options, frame budgets, and --batch_type semi_supervised
        add_semi_supervised_arguments(parser)

    @classmethod
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[[Collection[Tuple[str, Dict[str, np.ndarray]]]], Tuple[List[str], Dict[str, torch.Tensor]]]:
        # text padded with -1 (ignore id); audio and video frames with 0; the semi-supervised
        # dataset's per-utterance flag is one value, not a sequence (no labelled_lengths)
        collate = CommonCollateFn(float_pad_value=0.0, int_pad_value=-1, not_sequence=["labelled"])
        if getattr(args, "compile", False) and getattr(args, "compile_pad_frames", 0) > 0:
            return TimeBucketedCollate(collate, args.compile_pad_frames, _samples_per_frame(args))
        return collate

    @classmethod
    def build_iter_factory(
        cls, args: argparse.Namespace, distributed_option: DistributedOption, mode: str, kwargs: Optional[dict] = None
    ) -> AbsIterFactory:
        if args.batch_type != SEMI_SUPERVISED_BATCH_TYPE:
            return super().build_iter_factory(args, distributed_option, mode, kwargs)
        if mode == "train":
            return build_semi_supervised_iter_factory(
                args,
                distributed_option,
                preprocess_fn=cls.build_preprocess_fn(args, train=True),
                collate_fn=cls.build_collate_fn(args, train=True),
                check_requirements=lambda dataset: cls.check_task_requirements(
                    dataset, args.allow_variable_data_keys, train=True
                ),
            )
        # validation and attention plots read labelled data with ESPnet's own samplers; unless
        # --valid_batch_type says otherwise, validation batches get the labelled frame budget
        if mode == "valid" and args.valid_batch_type is None:
            budget = args.valid_batch_bins or args.labelled_batch_frames
            kwargs = {"batch_type": "length", "batch_bins": budget, **(kwargs or {})}
        return super().build_iter_factory(args, distributed_option, mode, kwargs)

    @classmethod
    def build_optimizers(cls, args: argparse.Namespace, model: torch.nn.Module) -> List[torch.optim.Optimizer]:
        """ESPnet's optimizer, fused on CUDA unless the config says otherwise (optimizer_options)."""
        conf = fused_on_cuda(args.optim, args.optim_conf, model.parameters())
        if conf is args.optim_conf:
            return super().build_optimizers(args, model)
        # a copy of the options: config.yaml keeps the user's optim_conf
        return super().build_optimizers(argparse.Namespace(**{**vars(args), "optim_conf": conf}), model)

    @classmethod
    def build_preprocess_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Optional[Callable[[str, Dict[str, np.array]], Dict[str, np.ndarray]]]:
        if not args.use_preprocessor:
            return None
        return USR2Preprocessor(
            train=train,
            samples_per_frame=_samples_per_frame(args),
            av_length_tolerance=args.av_length_tolerance,
            token_type=args.token_type if args.token_list is not None else None,  # pre-training: no text
            token_list=args.token_list,
            bpemodel=args.bpemodel,
            non_linguistic_symbols=args.non_linguistic_symbols,
            text_cleaner=args.cleaner,
        )

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        # Nothing is required by name: which inputs a batch needs depends on
        # model_conf.modalities (the model checks), and unlabelled data (and
        # --collect_stats over it) has no text; the labelled loss asks for text itself.
        return ()

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return ("speech", "video", "text")

    @classmethod
    def build_model(cls, args: argparse.Namespace) -> AbsESPnetModel:
        if issubclass(model_choices.get_class(args.model), USR2PretrainModel):
            if getattr(args, "comat_conf", None):
                raise ValueError(f"model: {args.model} reads no text; COMAT (comat_conf) needs transcripts")
            return _build_pretrain_model(args)
        if args.token_list is None:
            raise ValueError(
                f"model: {args.model} needs --token_list (the token file); only self-supervised "
                "pre-training (model: usr2_pretrain) trains without one"
            )
        if getattr(args, "probe_conf", None):
            raise ValueError(
                f"probe_conf is for self-supervised pre-training (model: usr2_pretrain), not model: {args.model}"
            )
        token_list = _token_list_into(args)
        vocab_size = len(token_list)
        logging.info(f"Vocabulary size: {vocab_size}")

        audio_frontend, video_frontend, encoder, fusion = _build_encoder_parts(args)
        d_model = encoder.output_size()
        decoder = decoder_choices.get_class(args.decoder)(
            vocab_size=vocab_size, encoder_output_size=d_model, **args.decoder_conf
        )
        augmentation = _build_augmentation(args)
        model = model_choices.get_class(args.model)(
            vocab_size=vocab_size,
            token_list=token_list,
            audio_frontend=audio_frontend,
            video_frontend=video_frontend,
            fusion=fusion,
            encoder=encoder,
            decoder=decoder,
            augmentation=augmentation,
            av_length_tolerance=args.av_length_tolerance,
            **args.model_conf,
        )
        if getattr(args, "comat_conf", None):  # before init (the compressor is initialised too) and the teacher
            model.attach_comat(build_comat(args.comat_conf, token_list, d_model))
            # config.yaml keeps the PLM's width: decoding builds the model without reading the PLM
            args.comat_conf = {**args.comat_conf, "plm_dim": model.comat.plm.output_size}
        if args.init is not None:
            initialize(model, args.init)
        if getattr(args, "semi", None) is not None:
            objective = semi_choices.get_class(args.semi).build(
                args.semi_conf, vocab_size=vocab_size, encoder_output_size=d_model
            )
            model.attach_semi_supervised(objective, args.teacher_conf)
        return _with_sync_batchnorm(model, args)


def _build_pretrain_model(args: argparse.Namespace) -> USR2PretrainModel:
    """Self-supervised pre-training: the recognition model's encoder parts, a predictor, an EMA teacher."""
    if getattr(args, "semi", None) is not None:
        raise ValueError(f"model: {args.model} is self-supervised pre-training; remove 'semi: {args.semi}'")
    audio_frontend, video_frontend, encoder, fusion = _build_encoder_parts(args)
    model = model_choices.get_class(args.model)(
        audio_frontend=audio_frontend,
        video_frontend=video_frontend,
        fusion=fusion,
        encoder=encoder,
        augmentation=_build_augmentation(args),
        av_length_tolerance=args.av_length_tolerance,
        probes=_build_probes(args, encoder.output_size()),
        **args.model_conf,
    )
    if args.init is not None:
        initialize(model, args.init)
    model.attach_teacher(args.teacher_conf)  # after init: the teacher copies the initialised student
    return _with_sync_batchnorm(model, args)


def _with_sync_batchnorm(model: AbsESPnetModel, args: argparse.Namespace) -> AbsESPnetModel:
    """``--sync_batchnorm``: every BatchNorm (student and teacher) becomes a SyncBatchNorm when
    the run is distributed over GPUs. Same parameters and buffers (checkpoints load either way);
    off a multi-GPU run it would change nothing but cannot run on CPU under DDP, so it is skipped."""
    if not getattr(args, "sync_batchnorm", False):
        return model
    if not (getattr(args, "distributed", False) and getattr(args, "ngpu", 0) > 0):
        logging.info("--sync_batchnorm: not a multi-GPU DDP run, batch norm stays per device")
        return model
    logging.info("--sync_batchnorm: batch-norm statistics are synchronised across ranks")
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


def _build_probes(args: argparse.Namespace, d_model: int) -> Optional[SupervisedProbes]:
    """Pre-training's supervised probes (``--probe_conf``; None when empty)."""
    if not getattr(args, "probe_conf", None):
        return None
    if args.token_list is None:
        raise ValueError("probe_conf: the supervised probes of pre-training need --token_list (and text in the data)")
    token_list = _token_list_into(args)
    decoder = decoder_choices.get_class(args.decoder)(
        vocab_size=len(token_list), encoder_output_size=d_model, **args.decoder_conf
    )
    return SupervisedProbes(len(token_list), decoder, d_model, **args.probe_conf)


def _build_encoder_parts(args: argparse.Namespace):
    """The frontends, encoder and projections (fusion) of the configured sizes."""
    audio_frontend = audio_frontend_choices.get_class(args.audio_frontend)(**args.audio_frontend_conf)
    if audio_frontend.samples_per_frame != _samples_per_frame(args):
        raise ValueError(
            f"the audio frontend maps {audio_frontend.samples_per_frame} samples to one frame, but "
            f"{args.sample_rate} Hz audio with {args.video_fps} fps video needs {_samples_per_frame(args)}"
        )
    video_frontend = video_frontend_choices.get_class(args.video_frontend)(**args.video_frontend_conf)
    encoder = encoder_choices.get_class(args.encoder)(**args.encoder_conf)
    d_model = encoder.output_size()
    fusion = fusion_choices.get_class(args.fusion)(
        video_size=video_frontend.output_size(),
        audio_size=audio_frontend.output_size(),
        output_size=d_model,
        **args.fusion_conf,
    )
    return audio_frontend, video_frontend, encoder, fusion


def _build_augmentation(args: argparse.Namespace) -> torch.nn.Module:
    return augmentation_choices.get_class(args.augmentation)(
        video_fps=float(args.video_fps), sample_rate=args.sample_rate, **args.augmentation_conf
    )


def _samples_per_frame(args: argparse.Namespace) -> int:
    if args.sample_rate % args.video_fps:
        raise ValueError(f"sample_rate {args.sample_rate} is not a multiple of video_fps {args.video_fps}")
    return args.sample_rate // args.video_fps


def _token_list_into(args: argparse.Namespace) -> List[str]:
    """The tokens of ``--token_list`` (a file or a list), kept in ``args`` as a list (as ESPnet's
    config.yaml writes it)."""
    args.token_list = _read_token_list(args.token_list)
    return args.token_list


def _read_token_list(token_list) -> List[str]:
    if isinstance(token_list, str):
        with open(token_list, encoding="utf-8") as f:
            return [line.rstrip() for line in f]
    if isinstance(token_list, (tuple, list)):
        return list(token_list)
    raise RuntimeError("token_list must be a file path or a list of tokens")
