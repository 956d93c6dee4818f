# Training data of the Sa2VA-1B recipe that FORMATS.md covers: RefCOCO, RefCOCO+, RefCOCOg
# (umd) train, MeViS train, ReVOS and Ref-YTVOS train (same referring-video layout) and the
# LLaVA-1.5 665k chat mix. Ref-DAVIS17 is evaluation only. Layout: data/README.md.
# Sa2VA: 5 objects per sample (with replacement), 5 random key frames per video (also
# SAM-2's frames), dynamic tiling up to 12 tiles of 448 px, SAM-2 at 1024 px.
# Reads `tokenizer` (the model's, configs/_base_/models/sa2va_mba_1b.py).
data_root = 'data'
max_length = 8192
# Objects (refs / expressions, one turn each) per referring sample, drawn as Sa2VA draws
# them: exactly `objects_per_sample`, with replacement (Sa2VA01RefSeg
# num_classes_per_sample=5, Sa2VA03RefVOS select_number=5; an image with 2 refs asks about
# them 5 times in all). objects_with_replacement = False: min(n, objects_per_sample)
# distinct objects, none asked twice.
objects_per_sample = 5
objects_with_replacement = True
# How each referring turn is answered: 'sa2va' draws Sa2VA's answers ("Sure, [SEG]." ...);
# 'seg_names_object' answers "[SEG] red circle." (for an LLM trained from random init:
# configs/tiny/demo.py, docs/demo.md).
answer_style = 'sa2va'

# File-local helpers (names starting with '_' are not config fields).
_image_inputs = dict(tokenizer='${tokenizer}', mllm_image_size=448,
                     num_image_tokens_per_tile=256, sam2_image_size=1024,
                     max_length='${max_length}')
_objects = dict(max_objects='${objects_per_sample}', replace='${objects_with_replacement}',
                answer_style='${answer_style}')
_refcoco = dict(type='RefCOCODataset', data_root='${data_root}', split='train',
                max_tiles=12, **_objects, **_image_inputs)
# frame_mode='random': Sa2VA's 5 sorted random key frames (distinct when T > 6)
_video = dict(type='RefVOSDataset', num_frames=5, frame_mode='random',
              sam2_frames='same', **_objects, **_image_inputs)

# Sa2VA's weighting of the mix: each dataset is read `repeats` times per epoch
# (`repeats=` in Sa2VA's configs/sa2va_in30_*b.py; its older sa2va_1b.py, with which
# Sa2VA-1B was trained, lists RefCOCO/+/g 4 times each, the rest as here). A leaf sets
# some: `dataset_repeats = dict(revos=1)`; 1 everywhere reads each dataset once.
dataset_repeats = dict(refcoco=5, refcoco_plus=5, refcocog=4, mevis=4, revos=10, ref_ytvos=4,
                       llava=1)


def _repeated(key, dataset):
    reference = '${dataset_repeats["' + key + '"]}'
    return dict(type='RepeatedDataset', repeats=reference, dataset=dataset)


train_dataset = dict(
    type='ConcatDataset',
    datasets=[
        _repeated('refcoco', dict(dataset='refcoco', **_refcoco)),
        _repeated('refcoco_plus', dict(dataset='refcoco+', **_refcoco)),
        _repeated('refcocog', dict(dataset='refcocog', split_by='umd', **_refcoco)),
        _repeated('mevis', dict(name='mevis', data_root='${data_root}/mevis/train', **_video)),
        _repeated('revos', dict(name='revos', data_root='${data_root}/revos/train', **_video)),
        _repeated('ref_ytvos', dict(name='ref_ytvos', data_root='${data_root}/ref_ytvos/train',
                                    **_video)),
        _repeated('llava', dict(type='LLaVADataset', data_root='${data_root}/llava',
                                tokenizer='${tokenizer}', ann_file='llava_v1_5_mix665k.json',
                                max_tiles=12, mllm_image_size=448,
                                num_image_tokens_per_tile=256, max_length='${max_length}')),
    ])
collate_fn = dict(type='sa2va_collate')
