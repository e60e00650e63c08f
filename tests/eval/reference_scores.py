"""The reference's confusion-matrix scores() (deeplab-pytorch / CLIP-ES), verbatim in its formulas,
over <id>.png ground truth and predictions. Used by the e2e test to check clipes-eval's JSON.

usage: reference_scores.py GT_DIR PRED_DIR N_CLASS  -> JSON on stdout
Predictions of 255 are mapped to background (the reference has no notion of them; the test passes
--pred-ignore background to clipes-eval for the same numbers).
"""
import json
import os
import sys

import numpy as np
from PIL import Image


def _fast_hist(label_true, label_pred, n_class):
    mask = (label_true >= 0) & (label_true < n_class)
    hist = np.bincount(
        n_class * label_true[mask].astype(int) + label_pred[mask],
        minlength=n_class ** 2,
    ).reshape(n_class, n_class)
    return hist


def scores(label_trues, label_preds, n_class):
    hist = np.zeros((n_class, n_class))
    for lt, lp in zip(label_trues, label_preds):
        hist += _fast_hist(lt.flatten(), lp.flatten(), n_class)
    acc = np.diag(hist).sum() / hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        acc_cls = np.diag(hist) / hist.sum(axis=1)
    acc_cls = np.nanmean(acc_cls)
    with np.errstate(divide="ignore", invalid="ignore"):
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
    mean_iu = np.nanmean(iu)
    freq = hist.sum(axis=1) / hist.sum()
    fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    cls_iu = dict(zip(range(n_class), iu))
    return {
        "Pixel Accuracy": acc,
        "Mean Accuracy": acc_cls,
        "Frequency Weighted IoU": fwavacc,
        "Mean IoU": mean_iu,
        "Class IoU": cls_iu,
    }


def main():
    gt_dir, pred_dir, n_class = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids = sorted(f[:-4] for f in os.listdir(gt_dir) if f.endswith(".png"))
    gts, preds = [], []
    for i in ids:
        gts.append(np.array(Image.open(os.path.join(gt_dir, i + ".png"))).astype(np.int64))
        p = np.array(Image.open(os.path.join(pred_dir, i + ".png"))).astype(np.int64)
        p[p == 255] = 0
        preds.append(p)
    s = scores(gts, preds, n_class)
    out = {k: (None if np.isnan(v) else float(v)) for k, v in s.items() if k != "Class IoU"}
    out["Class IoU"] = [None if np.isnan(v) else float(v) for v in s["Class IoU"].values()]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
