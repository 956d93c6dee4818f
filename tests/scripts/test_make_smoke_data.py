"""scripts/make_smoke_data.py --eval-sentences / --eval-expressions trim the evaluation
splits that tools/test.py reads, and leave the training splits alone."""

from mpr_cma.datasets import RefVOSSplit, load_refcoco, sentence_items
from scripts.make_smoke_data import write_smoke_data


def test_eval_splits_trimmed(tmp_path):
    full, small = tmp_path / "full", tmp_path / "small"
    write_smoke_data(full, image_size=64, frames=3)
    write_smoke_data(small, image_size=64, frames=3, eval_sentences=2, eval_expressions=1)
    items = {root: sentence_items(load_refcoco(root, "refcoco", split="val"))
             for root in (full, small)}
    assert len(items[full]) > 2 and [i[0] for i in items[small]] == [i[0] for i in
                                                                      items[full][:2]]
    exps = {root: list(RefVOSSplit(root / "mevis" / "valid_u").iter_expressions())
            for root in (full, small)}
    assert len(exps[full]) > 1 and [(e.video, e.exp_id) for e in exps[small]] == [
        (e.video, e.exp_id) for e in exps[full][:1]]
    train = {root: len(sentence_items(load_refcoco(root, "refcoco", split="train")))
             for root in (full, small)}
    assert train[full] == train[small]
