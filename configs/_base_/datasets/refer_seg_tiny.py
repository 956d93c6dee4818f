# Tiny training data for CPU tests: the same dataset types as
# configs/_base_/datasets/refer_seg_mix.py on a small data root in the real layouts, with
# the sizes of configs/tiny/sa2va_mba_tiny.py (56 px MLLM tiles = 4 tokens, SAM-2 at 64 px).
# Reads `tokenizer` (the model's).
data_root = 'data_tiny'
# As in refer_seg_mix.py: Sa2VA's draw, exactly 5 objects per sample with replacement.
objects_per_sample = 5
objects_with_replacement = True
_objects = dict(max_objects='${objects_per_sample}', replace='${objects_with_replacement}')
_tiny_inputs = dict(tokenizer='${tokenizer}', mllm_image_size=56, num_image_tokens_per_tile=4,
                    sam2_image_size=64, max_length=512)

train_dataset = dict(
    type='ConcatDataset',
    datasets=[
        dict(type='RefCOCODataset', data_root='${data_root}', dataset='refcoco', split='train',
             max_tiles=2, **_objects, **_tiny_inputs),
        dict(type='RefVOSDataset', name='mevis', data_root='${data_root}/mevis/train',
             num_frames=2, frame_mode='random', **_objects, **_tiny_inputs),
        dict(type='LLaVADataset', data_root='${data_root}/llava', ann_file='llava.json',
             tokenizer='${tokenizer}', max_tiles=2, mllm_image_size=56,
             num_image_tokens_per_tile=4, max_length=512),
    ])
collate_fn = dict(type='sa2va_collate')
