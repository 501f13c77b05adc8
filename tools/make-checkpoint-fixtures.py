#!/usr/bin/env python3
"""Writes test/fixtures/checkpoints/ with Python's own torch.save and pickle (Debian: python3-torch,
python3-numpy), from the formula weights of the tiny-cpu preset with 3 classes:
    node dist/tools/fixture-weights.js --preset tiny-cpu --num-classes 3 --out /tmp/tiny3.safetensors
    python3 tools/make-checkpoint-fixtures.py /tmp/tiny3.safetensors
Files (each a few KB, so every tensor is stored small):
  tiny-cpu.pth          torch.save zip of the full state dict (torchvision names). To stay small each
                        tensor is its first row broadcast over the other dims (torch.expand: a stride-0
                        view of a last-dim-sized storage); expected value i = formula[i % last dim].
                        Except: rpn.head.cls_logits.weight is whole, rpn.head.bbox_pred.weight is a
                        transposed (non-contiguous) view with the whole values, and the two RPN
                        biases are views into one shared storage.
  tiny-cpu-legacy.pth   the same with torch.save(_use_new_zipfile_serialization=False).
  torchvision-legacy-names.pth  a few tensors under torchvision < 0.13 names (rpn.head.conv.weight,
                        backbone.fpn.inner_blocks.0.weight, roi_heads.mask_head.mask_fcn1.weight).
  dtypes.pth            {'state_dict': {float64, float16, bfloat16, int64, bool, nn.Parameter}, 'epoch': 3}
  detectron2.pkl        a Detectron2 model-zoo style pickle (protocol 2, as Python 3 writes it: bytes
                        through _codecs.encode) {'model': {Detectron2 names: numpy arrays}, '__author__'}
                        holding the small tensors of every naming rule, in Detectron2's class layout.
  detectron2-p4.pkl     two of those arrays, pickle protocol 4 (FRAME, STACK_GLOBAL, MEMOIZE).
  hostile.pkl           a pickle whose loading would call os.system: must be refused.
"""
import collections, json, os, pickle, struct, sys
import numpy as np
import torch

src = sys.argv[1]
out = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'checkpoints')
os.makedirs(out, exist_ok=True)

with open(src, 'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    header = json.loads(f.read(n))
    blob = f.read()
full = collections.OrderedDict()
for name, e in header.items():
    if name == '__metadata__':
        continue
    assert e['dtype'] == 'F32', name
    a, b = e['data_offsets']
    full[name] = torch.from_numpy(np.frombuffer(blob[a:b], dtype='<f4').copy()).reshape(e['shape'])

# --- tiny-cpu.pth / tiny-cpu-legacy.pth
sd = collections.OrderedDict()
for name, t in full.items():
    row = t.reshape(-1)[: t.shape[-1]].clone()
    sd[name] = row.expand(t.shape)
w = full['rpn.head.cls_logits.weight']
sd['rpn.head.cls_logits.weight'] = w.clone()
bw = full['rpn.head.bbox_pred.weight']  # [12, C, 1, 1]
base = bw.reshape(bw.shape[0], -1).t().contiguous()  # [C, 12]
sd['rpn.head.bbox_pred.weight'] = torch.as_strided(base, bw.shape, (1, bw.shape[0], 1, 1))
b1, b2 = full['rpn.head.cls_logits.bias'], full['rpn.head.bbox_pred.bias']
shared = torch.cat([b1, b2])
sd['rpn.head.cls_logits.bias'] = shared[: b1.numel()]
sd['rpn.head.bbox_pred.bias'] = shared[b1.numel():]
for k in ('rpn.head.bbox_pred.weight', 'rpn.head.cls_logits.bias', 'rpn.head.bbox_pred.bias'):
    assert torch.equal(sd[k], full[k]), k
assert not sd['rpn.head.bbox_pred.weight'].is_contiguous()
sd._metadata = collections.OrderedDict({'': {'version': 1}})  # as module.state_dict() has
torch.save(sd, os.path.join(out, 'tiny-cpu.pth'))
torch.save(sd, os.path.join(out, 'tiny-cpu-legacy.pth'), _use_new_zipfile_serialization=False)

# --- old torchvision names
old = collections.OrderedDict()
old['rpn.head.conv.weight'] = full['rpn.head.conv.0.0.weight'][:2].clone()
old['backbone.fpn.inner_blocks.0.weight'] = full['backbone.fpn.inner_blocks.0.0.weight'][:2].clone()
old['roi_heads.mask_head.mask_fcn1.bias'] = full['roi_heads.mask_head.0.0.bias'].clone()
torch.save(old, os.path.join(out, 'torchvision-legacy-names.pth'))

# --- dtypes
x = torch.tensor([[0.5, -1.25, 3.0], [1e-3, 2.0, -0.0]], dtype=torch.float64)
dt = collections.OrderedDict()
dt['f64'] = x
dt['f16'] = x.half()
dt['bf16'] = x.bfloat16()
dt['i64'] = torch.tensor([-3, 0, 2147483647], dtype=torch.int64)
dt['bool'] = torch.tensor([True, False, True])
dt['param'] = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))
torch.save({'state_dict': dt, 'epoch': 3, 'arch': 'test'}, os.path.join(out, 'dtypes.pth'))

# --- Detectron2 model-zoo style .pkl (names and class layout of Detectron2), small tensors only
K = full['roi_heads.box_predictor.cls_score.weight'].shape[0] - 1  # foreground classes
ours_to_d2 = {
    'backbone.body.conv1.weight': 'backbone.bottom_up.stem.conv1.weight',
    'backbone.body.bn1.weight': 'backbone.bottom_up.stem.conv1.norm.weight',
    'backbone.body.bn1.bias': 'backbone.bottom_up.stem.conv1.norm.bias',
    'backbone.body.layer1.0.conv1.weight': 'backbone.bottom_up.res2.0.conv1.weight',
    'backbone.body.layer1.0.bn1.weight': 'backbone.bottom_up.res2.0.conv1.norm.weight',
    'backbone.body.layer1.1.bn2.bias': 'backbone.bottom_up.res2.1.conv2.norm.bias',
    'backbone.body.layer2.0.downsample.0.weight': 'backbone.bottom_up.res3.0.shortcut.weight',
    'backbone.body.layer2.0.downsample.1.weight': 'backbone.bottom_up.res3.0.shortcut.norm.weight',
    'backbone.body.layer4.1.bn1.weight': 'backbone.bottom_up.res5.1.conv1.norm.weight',
    'backbone.fpn.inner_blocks.0.0.weight': 'backbone.fpn_lateral2.weight',
    'backbone.fpn.inner_blocks.3.0.bias': 'backbone.fpn_lateral5.bias',
    'backbone.fpn.layer_blocks.2.0.bias': 'backbone.fpn_output4.bias',
    'rpn.head.conv.0.0.bias': 'proposal_generator.rpn_head.conv.bias',
    'rpn.head.cls_logits.weight': 'proposal_generator.rpn_head.objectness_logits.weight',
    'rpn.head.cls_logits.bias': 'proposal_generator.rpn_head.objectness_logits.bias',
    'rpn.head.bbox_pred.weight': 'proposal_generator.rpn_head.anchor_deltas.weight',
    'rpn.head.bbox_pred.bias': 'proposal_generator.rpn_head.anchor_deltas.bias',
    'roi_heads.box_head.fc6.bias': 'roi_heads.box_head.fc1.bias',
    'roi_heads.box_head.fc7.bias': 'roi_heads.box_head.fc2.bias',
    'roi_heads.box_predictor.cls_score.weight': 'roi_heads.box_predictor.cls_score.weight',
    'roi_heads.box_predictor.cls_score.bias': 'roi_heads.box_predictor.cls_score.bias',
    'roi_heads.box_predictor.bbox_pred.weight': 'roi_heads.box_predictor.bbox_pred.weight',
    'roi_heads.box_predictor.bbox_pred.bias': 'roi_heads.box_predictor.bbox_pred.bias',
    'roi_heads.mask_head.0.0.bias': 'roi_heads.mask_head.mask_fcn1.bias',
    'roi_heads.mask_predictor.conv5_mask.bias': 'roi_heads.mask_head.deconv.bias',
    'roi_heads.mask_predictor.mask_fcn_logits.weight': 'roi_heads.mask_head.predictor.weight',
    'roi_heads.mask_predictor.mask_fcn_logits.bias': 'roi_heads.mask_head.predictor.bias',
}


def d2_layout(name, t):
    a = t.numpy()
    if name.startswith('roi_heads.box_predictor.cls_score.'):
        return np.concatenate([a[1:], a[:1]])  # background last
    if name.startswith('roi_heads.box_predictor.bbox_pred.'):
        return a[4:]  # no background rows
    if name.startswith('roi_heads.mask_predictor.mask_fcn_logits.'):
        return a[1:]  # no background channel
    return a


model = {d2: d2_layout(ours, full[ours]) for ours, d2 in ours_to_d2.items()}
model['pixel_mean'] = np.array([[[103.53]], [[116.28]], [[123.675]]], dtype=np.float32)  # dropped on load
with open(os.path.join(out, 'detectron2.pkl'), 'wb') as f:
    pickle.dump({'model': model, '__author__': 'maskrcnn-webgpu test fixture', 'matching_heuristics': True}, f, protocol=2)
with open(os.path.join(out, 'detectron2-p4.pkl'), 'wb') as f:
    small = {k: model[k] for k in ('proposal_generator.rpn_head.objectness_logits.bias', 'roi_heads.box_predictor.cls_score.bias')}
    small['backbone.bottom_up.res2.0.conv1.weight'] = np.asfortranarray(model['backbone.bottom_up.res2.0.conv1.weight'].astype(np.float64))
    pickle.dump({'model': small}, f, protocol=4)


class Hostile:
    def __reduce__(self):
        return (os.system, ('echo this must never run',))


with open(os.path.join(out, 'hostile.pkl'), 'wb') as f:
    pickle.dump({'model': Hostile()}, f, protocol=2)
print(f'{len(full)} tensors, K={K}; wrote', ', '.join(sorted(os.listdir(out))))
