#!/usr/bin/python3
"""torchvision parity fixtures for the model zoo (run at dev time; the tests never need Python).

Rebuilds the recipe of shared/fixtures/torchvision-maskrcnn (its README): a torchvision 0.14 detector
whose every state-dict tensor is filled by the weight formula from its own name, one tiny_coco image
scaled to [0, 1], box_score_thresh 0, and in training mode rpn/box batch_size_per_image 1e9 so the
losses involve no random sampling. Writes <out>/expected.safetensors and <out>/README.md.

  /usr/bin/python3 tools/make-parity-fixture.py --preset torchvision-r50-fpn-v2 --out test/fixtures/torchvision-r50-fpn-v2
  /usr/bin/python3 tools/make-parity-fixture.py --preset torchvision-r50-fpn --verify ../shared/fixtures/torchvision-maskrcnn/case-000000555705

--verify rebuilds the shared fixture's case at its own sizes with the full-size tensors and prints
the largest difference of every tensor the two have in common (the check that this script is the
shared fixture's recipe). Fixtures written with --out are compact (sliced tensors, see SLICES) so
they can live in the repository; the tensor names say the slice, e.g. `fpn.0[:,0:16]`.

Presets (torchvision 0.14's builders, with the pretrained-weights settings: trainable_layers 3):
  torchvision-r50-fpn         maskrcnn_resnet50_fpn: resnet50(FrozenBatchNorm2d) + FPN, MaskRCNN
  torchvision-faster-r50-fpn  fasterrcnn_resnet50_fpn: the same trunk, FasterRCNN (no mask branch)
  torchvision-r50-fpn-v2      maskrcnn_resnet50_fpn_v2: resnet50(BatchNorm2d), FPN with BatchNorm2d,
                              RPNHead(conv_depth=2), FastRCNNConvFCHead 4conv1fc BN, MaskRCNNHeads BN
  torchvision-x101-32x8d-fpn  resnext101_32x8d(FrozenBatchNorm2d) + FPN, MaskRCNN
"""
import argparse
import json
import os
import re
import struct

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw
from torch import nn
from torchvision.models import resnet50, resnext101_32x8d
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, RPNHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.ops import FrozenBatchNorm2d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, '..', 'shared', 'data', 'tiny_coco', 'val2017')
SHARED_CASE = os.path.join(ROOT, '..', 'shared', 'fixtures', 'torchvision-maskrcnn', 'case-000000555705')

# ---------------------------------------------------------------- the weight formula (shared README)
FROZEN_BN_RE = re.compile(r'(^|\.)(bn\d|downsample\.1)\.(weight|bias|running_mean|running_var)$')


def fnv1a32(s):
    h = 0x811C9DC5
    for b in s.encode('utf-8'):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def formula_uniform(name, n, seed=0):
    i = np.arange(n, dtype=np.uint64)
    x = (i * np.uint64(0x9E3779B1) + np.uint64(fnv1a32(name) + seed)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    return x.astype(np.float64) / 2.0**32 * 2 - 1


def formula_state_dict(sd, seed=0):
    """Every tensor from its name. Batch-norm tensors are the trunk's (FROZEN_BN_RE) and those of any
    module with a running_mean (v2's FPN and head BatchNorm2d), with the same rules."""
    bn_modules = {k[: -len('.running_mean')] for k in sd if k.endswith('.running_mean')}
    out = {}
    for name, t in sd.items():
        if name.endswith('.num_batches_tracked'):
            out[name] = torch.zeros_like(t)
            continue
        u = formula_uniform(name, t.numel(), seed)
        m = FROZEN_BN_RE.search(name)
        kind = m.group(3) if m else None
        if kind is None and name.rsplit('.', 1)[0] in bn_modules:
            kind = name.rsplit('.', 1)[1]
        if kind == 'weight':
            v = 0.2 + 0.05 * u if '.bn3.' in name else 1 + 0.1 * u
        elif kind == 'bias' or kind == 'running_mean':
            v = 0.1 * u
        elif kind == 'running_var':
            v = 1 + 0.25 * (u + 1)
        elif name.endswith('.bias'):
            v = 0.01 * u
        elif name.endswith('.weight'):
            v = u * np.sqrt(3.0 / int(np.prod(t.shape[1:])))
        else:
            raise ValueError(f'formula does not define {name}')
        out[name] = torch.from_numpy(v.astype(np.float32)).reshape(t.shape)
    return out


# ---------------------------------------------------------------- the models
def build(preset, min_size, max_size):
    kw = dict(min_size=min_size, max_size=max_size, box_score_thresh=0.0)
    if preset in ('torchvision-r50-fpn', 'torchvision-faster-r50-fpn'):
        backbone = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3)
        return (MaskRCNN if preset == 'torchvision-r50-fpn' else FasterRCNN)(backbone, num_classes=91, **kw)
    if preset == 'torchvision-x101-32x8d-fpn':
        backbone = _resnet_fpn_extractor(resnext101_32x8d(norm_layer=FrozenBatchNorm2d), 3)
        return MaskRCNN(backbone, num_classes=91, **kw)
    if preset == 'torchvision-r50-fpn-v2':
        # maskrcnn_resnet50_fpn_v2 (torchvision 0.14 mask_rcnn.py) with trainable_backbone_layers 3.
        backbone = _resnet_fpn_extractor(resnet50(), 3, norm_layer=nn.BatchNorm2d)
        anchor_gen = torchvision.models.detection.anchor_utils.AnchorGenerator(
            ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
        rpn_head = RPNHead(backbone.out_channels, anchor_gen.num_anchors_per_location()[0], conv_depth=2)
        box_head = FastRCNNConvFCHead((backbone.out_channels, 7, 7), [256, 256, 256, 256], [1024], norm_layer=nn.BatchNorm2d)
        mask_head = MaskRCNNHeads(backbone.out_channels, [256, 256, 256, 256], 1, norm_layer=nn.BatchNorm2d)
        return MaskRCNN(backbone, num_classes=91, rpn_anchor_generator=anchor_gen, rpn_head=rpn_head,
                        box_head=box_head, mask_head=mask_head, **kw)
    raise SystemExit(f'unknown preset {preset}')


# ---------------------------------------------------------------- safetensors I/O
DTYPES = {np.dtype('float32'): 'F32', np.dtype('int64'): 'I64', np.dtype('uint8'): 'U8'}


def write_safetensors(path, tensors, metadata):
    header, blobs, off = {'__metadata__': metadata}, [], 0
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        b = a.tobytes()
        header[k] = {'dtype': DTYPES[a.dtype], 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    np_dt = {'F32': np.float32, 'I64': np.int64, 'U8': np.uint8, 'BOOL': np.bool_}
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        out[k] = np.frombuffer(data[a:b], dtype=np_dt[v['dtype']]).reshape(v['shape'])
    return out, header.get('__metadata__', {})


# ---------------------------------------------------------------- recording
def load_case(case_dir):
    with open(os.path.join(case_dir, 'targets.json')) as f:
        t = json.load(f)
    img = Image.open(os.path.join(DATA, t['file_name'])).convert('RGB')
    W, H = img.size
    masks = []
    for poly in t['polygons']:
        m = Image.new('L', (W, H), 0)
        # One object may list several polygons (a list of lists) or a single flat one.
        for p in (poly if poly and isinstance(poly[0], list) else [poly]):
            ImageDraw.Draw(m).polygon([(p[i], p[i + 1]) for i in range(0, len(p), 2)], outline=1, fill=1)
        masks.append(np.asarray(m, dtype=np.uint8))
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255
    target = {'boxes': torch.tensor(t['boxes'], dtype=torch.float32), 'labels': torch.tensor(t['labels'], dtype=torch.int64),
              'masks': torch.from_numpy(np.stack(masks))}
    return x, target


def record(model, x, target, grad_names):
    """Reference tensors (full size) of one image: inference, then training losses and gradients."""
    out = {}
    has_mask = isinstance(model, MaskRCNN)
    model.eval()
    with torch.no_grad():
        images, _ = model.transform([x])
        out['input.tensor'] = images.tensors
        out['input.image_size'] = torch.tensor(images.image_sizes[0], dtype=torch.int64)
        feats = model.backbone(images.tensors)
        for k, v in feats.items():
            out[f'fpn.{k}'] = v
        rpn = model.rpn
        fl = list(feats.values())
        objectness, deltas = rpn.head(fl)
        for i, (o, d) in enumerate(zip(objectness, deltas)):
            out[f'rpn.objectness.{i}'] = o
            out[f'rpn.deltas.{i}'] = d
        anchors = rpn.anchor_generator(images, fl)
        per_level = [o[0].numel() for o in objectness]
        obj_f, del_f = concat_box_prediction_layers(objectness, deltas)
        props = rpn.box_coder.decode(del_f, anchors).view(1, -1, 4)
        boxes, scores = rpn.filter_proposals(props, obj_f, images.image_sizes, per_level)
        out['rpn.proposals'], out['rpn.proposal_scores'] = boxes[0], scores[0]
        rh = model.roi_heads
        bf = rh.box_head(rh.box_roi_pool(feats, boxes, images.image_sizes))
        out['box.class_logits'], out['box.box_regression'] = rh.box_predictor(bf)
        dets, _ = rh(feats, boxes, images.image_sizes)
        if has_mask:
            d5 = dets[0]['boxes'][:5]
            out['mask.logits[0:5]'] = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(feats, [d5], images.image_sizes)))
        post = model.transform.postprocess(dets, images.image_sizes, [tuple(x.shape[1:])])[0]
        out['det.boxes'], out['det.scores'], out['det.labels'] = post['boxes'], post['scores'], post['labels']
        if has_mask:
            out['det.masks[0:5]'] = post['masks'][:5, 0]
    model.train()
    model.rpn.fg_bg_sampler.batch_size_per_image = 10**9
    model.roi_heads.fg_bg_sampler.batch_size_per_image = 10**9
    t = {k: v for k, v in target.items() if has_mask or k != 'masks'}
    _, resized = model.transform([x], [t])
    out['target.boxes'] = target['boxes']
    out['target.labels'] = target['labels']
    out['target.resized_boxes'] = resized[0]['boxes']
    if has_mask:
        out['target.masks'] = target['masks']
        out['target.resized_masks'] = resized[0]['masks']
    losses = model([x], [t])
    for k, v in losses.items():
        out[f'loss.{k}'] = v.detach().reshape(1)
    sum(losses.values()).backward()
    params = dict(model.named_parameters())
    for g in grad_names:
        m = re.fullmatch(r'([^\[]+)(?:\[(\d+):(\d+)\])?', g)
        grad = params[m.group(1)].grad
        assert grad is not None, f'{g} has no gradient'
        out[f'grad.{g}'] = grad if m.group(2) is None else grad[int(m.group(2)):int(m.group(3))]
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def f64_gradients(model, x, target, grad_names):
    """The same gradients from the same model and input in float64 (grad_f64.<name>). With BatchNorm2d
    on batch statistics (v2) float32 determines some gradients only to ~1e-2: torch's own float32
    gradients differ from these by that much, so the test scales its tolerance by the difference."""
    model64 = model.double()
    t64 = {k: (v.double() if v.is_floating_point() else v) for k, v in target.items()}
    model64.zero_grad()
    ref = record(model64, x.double(), t64, grad_names)
    model.float()
    return {'grad_f64.' + k[5:]: v.astype(np.float32) for k, v in ref.items() if k.startswith('grad.')}


# ---------------------------------------------------------------- what a compact fixture keeps
FPN_CHANNELS = 16
BOX_ROWS = 128
GRADS = {
    'common': ['backbone.body.layer2.0.conv1.weight[0:8]', 'backbone.body.layer4.2.conv3.weight[0:8]',
               'backbone.fpn.inner_blocks.0.0.weight[0:16]', 'backbone.fpn.layer_blocks.3.0.weight[0:4]',
               'rpn.head.bbox_pred.weight', 'roi_heads.box_predictor.cls_score.weight[0:16]',
               # Rows of the image's class (17, dog): the other classes' regression gets no gradient.
               'roi_heads.box_predictor.bbox_pred.weight[64:80]'],
    'torchvision-r50-fpn': ['roi_heads.box_head.fc6.weight[0:2]', 'roi_heads.mask_head.0.0.weight[0:4]', 'roi_heads.mask_predictor.mask_fcn_logits.weight[16:20]'],
    'torchvision-faster-r50-fpn': ['roi_heads.box_head.fc6.weight[0:2]', 'roi_heads.box_head.fc7.weight[0:16]'],
    'torchvision-r50-fpn-v2': ['rpn.head.conv.1.0.weight[0:4]', 'roi_heads.box_head.0.0.weight[0:4]', 'roi_heads.box_head.0.1.weight',
                               'roi_heads.box_head.3.1.bias', 'roi_heads.box_head.5.weight[0:2]', 'backbone.fpn.inner_blocks.1.1.weight',
                               'backbone.body.layer2.0.bn2.weight', 'roi_heads.mask_head.3.1.weight',
                               'roi_heads.mask_head.0.0.weight[0:4]', 'roi_heads.mask_predictor.mask_fcn_logits.weight[16:20]'],
    'torchvision-x101-32x8d-fpn': ['backbone.body.layer3.0.conv2.weight[0:16]', 'backbone.body.layer3.22.conv2.weight[0:16]',
                                   'roi_heads.box_head.fc6.weight[0:2]', 'roi_heads.mask_predictor.mask_fcn_logits.weight[16:20]'],
}


def compact(ref):
    """The tensors the zoo parity test needs, sliced to keep the fixture small."""
    out = {}
    for k, v in ref.items():
        if k.startswith('fpn.'):
            out[f'{k}[:,0:{FPN_CHANNELS}]'] = v[:, :FPN_CHANNELS]
        elif k.startswith('box.'):
            out[f'{k}[0:{BOX_ROWS}]'] = v[:BOX_ROWS]
        elif k == 'mask.logits[0:5]':
            # Each detection's own class channel (the one inference uses).
            labels = ref['det.labels'][:5]
            out['mask.logits_of_label[0:5]'] = v[np.arange(len(labels)), labels]
        elif k.startswith('grad_f64.'):
            out[k] = v  # the gradients' rows are already those listed
        elif k in ('det.masks[0:5]', 'target.masks', 'target.boxes'):
            continue  # the test trains on the resized targets; mask pasting is the R50 fixture's check
        else:
            out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--preset', required=True, choices=sorted(k for k in GRADS if k != 'common'))
    ap.add_argument('--out', help='folder of the compact fixture to write')
    ap.add_argument('--verify', help='a shared fixture case folder to reproduce (full-size tensors, its sizes and gradients)')
    ap.add_argument('--min-size', type=int, default=128)
    ap.add_argument('--max-size', type=int, default=160)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--grad-f64', action='store_true',
                    help='also record the gradients in float64 (grad_f64.<name>, stored as float32): the test\'s '
                         'measure of how well float32 can determine each gradient (53 min on 2 loaded cores for v2)')
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    case = a.verify or SHARED_CASE
    x, target = load_case(case)
    if a.verify:
        expected, meta = read_safetensors(os.path.join(case, 'expected.safetensors'))
        min_size, max_size = int(meta['min_size']), int(meta['max_size'])
        grads = [k[5:] for k in expected if k.startswith('grad.')]
    else:
        min_size, max_size = a.min_size, a.max_size
        grads = GRADS['common'] + GRADS[a.preset]
    model = build(a.preset, min_size, max_size)
    model.load_state_dict(formula_state_dict(model.state_dict(), a.seed))
    ref = record(model, x, target, grads)
    if a.grad_f64:
        ref.update(f64_gradients(model, x, target, grads))
    if a.verify:
        worst = 0.0
        for k in sorted(expected):
            if k not in ref:
                print(f'{k}: not recorded')
                continue
            e, r = expected[k].astype(np.float64), ref[k].astype(np.float64)
            if e.shape != r.shape:
                print(f'{k}: shape {list(r.shape)} vs {list(e.shape)}')
                worst = float('inf')
                continue
            d = float(np.abs(e - r).max() / max(np.abs(e).max(), 1e-30)) if e.size else 0.0
            worst = max(worst, d)
            print(f'{k}: max |diff| / max |expected| = {d:.3g}')
        print(f'worst scaled difference: {worst:.3g}')
        # Near-tied proposals may come out in another order: compare them, and the box-head rows
        # computed for them, as matched sets.
        e, r = expected['rpn.proposals'], ref['rpn.proposals']
        dist = np.abs(e[:, None, :] - r[None, :, :]).max(-1)
        j = dist.argmin(1)
        ok = dist[np.arange(len(e)), j] <= 1e-3
        print(f'rpn.proposals matched within 1e-3 px: {ok.sum()} of {len(e)} (recorded {len(r)})')
        for k in ('box.class_logits', 'box.box_regression'):
            d = np.abs(expected[k][ok] - ref[k][j[ok]]).max() / np.abs(expected[k]).max()
            print(f'{k} of matched proposals: max |diff| / max |expected| = {d:.3g}')
        return
    if not a.out:
        raise SystemExit('give --out FOLDER or --verify CASE')
    os.makedirs(a.out, exist_ok=True)
    meta = {'preset': a.preset, 'seed': str(a.seed), 'min_size': str(min_size), 'max_size': str(max_size), 'score_thresh': '0.0',
            'image': os.path.basename(json.load(open(os.path.join(case, 'targets.json')))['file_name']),
            'original_size': f'{x.shape[1]},{x.shape[2]}', 'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'made_by': 'tools/make-parity-fixture.py',
            # Every state-dict tensor's name and shape, so the test can check that ours load by name.
            'state_dict': json.dumps({k: list(v.shape) for k, v in model.state_dict().items()}, separators=(',', ':'))}
    write_safetensors(os.path.join(a.out, 'expected.safetensors'), compact(ref), meta)
    print(f'wrote {a.out}/expected.safetensors ({os.path.getsize(os.path.join(a.out, "expected.safetensors"))} bytes)')


if __name__ == '__main__':
    main()
