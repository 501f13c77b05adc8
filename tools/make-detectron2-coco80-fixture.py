#!/usr/bin/env python3
"""Writes test/fixtures/checkpoints/detectron2-coco80.pkl: the class-specific layers of a Detectron2
COCO model (80 foreground classes, cls_agnostic_bbox_reg False) as its model zoo pickles them, with
tiny input sizes and values that name their own rows, so a test can follow a class from
Detectron2's index to our label, COCO category id and name.

Detectron2's layout (detectron2/modeling/roi_heads/fast_rcnn.py, mask_head.py):
  cls_score  Linear(in, K + 1): row k < K is class k, row K the background
  bbox_pred  Linear(in, 4 K): rows 4k..4k+3 are class k's (dx, dy, dw, dh); no background rows
  predictor  Conv2d(dims, K, 1): channel k is class k's mask; no background channel
Values: cls_score row k = [k, -k], bias k; bbox_pred row 4k+j = [100k + j, 0.5], bias 100k + j;
mask predictor channel k = [k, k + 0.25], bias k.
    /usr/bin/python3 tools/make-detectron2-coco80-fixture.py
"""
import os
import pickle

import numpy as np

K = 80
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'checkpoints', 'detectron2-coco80.pkl')
k = np.arange(K + 1, dtype=np.float32)
r = np.arange(4 * K)
bbox_rows = (100 * (r // 4) + r % 4).astype(np.float32)
c = np.arange(K, dtype=np.float32)
model = {
    'roi_heads.box_predictor.cls_score.weight': np.stack([k, -k], 1),
    'roi_heads.box_predictor.cls_score.bias': k.copy(),
    'roi_heads.box_predictor.bbox_pred.weight': np.stack([bbox_rows, np.full(4 * K, 0.5, np.float32)], 1),
    'roi_heads.box_predictor.bbox_pred.bias': bbox_rows.copy(),
    'roi_heads.mask_head.predictor.weight': np.stack([c, c + 0.25], 1).reshape(K, 2, 1, 1),
    'roi_heads.mask_head.predictor.bias': c.copy(),
    # Any Detectron2 file has its backbone and RPN names (how the loader tells its layout).
    'proposal_generator.rpn_head.objectness_logits.bias': np.zeros(3, np.float32),
    'pixel_mean': np.array([[[103.53]], [[116.28]], [[123.675]]], dtype=np.float32),
}
with open(out, 'wb') as f:
    pickle.dump({'model': model, '__author__': 'maskrcnn-webgpu test fixture'}, f, protocol=2)
print(f'wrote {out} ({os.path.getsize(out)} bytes)')
