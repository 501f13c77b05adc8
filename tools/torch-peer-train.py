#!/usr/bin/python3
"""The CPU peer of `node cli/train.js`: torchvision's Mask R-CNN configured like our `tiny-cpu` preset,
trained the same way on the same generated shapes data with PyTorch's CPU path (oneDNN).

Dev-time only (never needed by tests): Debian's python3-torch / python3-torchvision (1.13 / 0.14).
The model follows model/presets.ts (`tiny-cpu`): a ResNet-18-style backbone of BasicBlocks with
stem 8 and stages [8, 16, 32, 64], GroupNorm(4) after every conv, all layers trained; FPN of 32
channels on layer1..4 with the max-pool P6; anchors 12..192 (one size per level, ratios 0.5/1/2);
RPN: 200/100 proposals pre/post NMS in training, 200/50 in testing, 64 anchors sampled per image
(half positive); RoI heads: 32 RoIs per image, up to half positive, TwoMLPHead of 256, a one-conv
32-channel mask head with a 32-channel deconv predictor; 128 px images (min = max size 128) with
torchvision normalisation; 5 classes (4 shapes + background). Schedule as train/config.ts's
synthetic defaults: SGD lr 0.02, momentum 0.9, weight decay 1e-4 (none on norm parameters), linear
warmup over 50 iterations from 0.001x, LR x0.1 at 80% and 95% of the iterations, batch 4,
horizontal flip 0.5, images shuffled each epoch.

Writes COCO results (bbox and segm, compressed RLE) for the validation images; score them with our
COCOeval: `node dist/bench/torch-peer.js` runs this script and the scoring and prints JSON lines.

usage: /usr/bin/python3 tools/torch-peer-train.py --data .cache/shapes-s0-n1000-100-128px \
         --out /tmp/peer [--iters 1500] [--threads 2] [--seed 0]
"""
import argparse
import json
import os
import random
import time

import torch
from torch import nn
import torchvision
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import TwoMLPHead, FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.resnet import ResNet, BasicBlock
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

STEM, WIDTHS, GN_GROUPS, FPN_CH = 8, [8, 16, 32, 64], 4, 32


# ---- COCO compressed RLE (pycocotools' string format; pycocotools itself is not in Debian) ----

def rle_decode(rle):
    h, w = rle['size']
    counts = rle['counts']
    if isinstance(counts, str):
        counts = _counts_from_string(counts)
    flat = torch.zeros(h * w, dtype=torch.uint8)
    pos, val = 0, 0
    for c in counts:
        if val:
            flat[pos:pos + c] = 1
        pos += c
        val ^= 1
    return flat.reshape(w, h).t().contiguous()  # column-major


def _counts_from_string(s):
    counts, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask):
    """mask: [H, W] bool/uint8 tensor -> {'size', 'counts'} with pycocotools' compressed string."""
    h, w = mask.shape
    flat = mask.t().reshape(-1).to(torch.int8)
    change = torch.nonzero(flat[1:] != flat[:-1]).flatten() + 1
    bounds = [0] + change.tolist() + [flat.numel()]
    runs = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
    if flat.numel() and flat[0] == 1:
        runs = [0] + runs
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1f
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return {'size': [h, w], 'counts': ''.join(out)}


# ---- data ----

class Shapes(torch.utils.data.Dataset):
    def __init__(self, root, split, train):
        ann = json.load(open(os.path.join(root, 'annotations', f'instances_{split}.json')))
        self.dir = os.path.join(root, split)
        self.images = ann['images']
        self.by_image = {}
        for a in ann['annotations']:
            self.by_image.setdefault(a['image_id'], []).append(a)
        if train:  # as our loader: images without objects are skipped in training
            self.images = [im for im in self.images if self.by_image.get(im['id'])]
        self.train = train

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        info = self.images[i]
        img = torchvision.io.read_image(os.path.join(self.dir, info['file_name']), torchvision.io.ImageReadMode.RGB).float() / 255
        anns = [a for a in self.by_image.get(info['id'], []) if not a.get('iscrowd')]
        boxes = torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]] for a in anns], dtype=torch.float32).reshape(-1, 4)
        masks = torch.stack([rle_decode(a['segmentation']) for a in anns]) if anns else torch.zeros(0, info['height'], info['width'], dtype=torch.uint8)
        labels = torch.tensor([a['category_id'] for a in anns], dtype=torch.int64)
        if self.train and random.random() < 0.5:
            img, masks = img.flip(-1), masks.flip(-1)
            w = img.shape[-1]
            boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
        return img, {'boxes': boxes, 'labels': labels, 'masks': masks, 'image_id': info['id']}


# ---- model ----

class TinyResNet(ResNet):
    """torchvision's ResNet with our tiny-cpu widths (its constructor fixes 64..512)."""

    def __init__(self):
        nn.Module.__init__(self)
        norm = lambda c: nn.GroupNorm(GN_GROUPS, c)
        self._norm_layer, self.inplanes, self.dilation, self.groups, self.base_width = norm, STEM, 1, 1, 64
        self.conv1 = nn.Conv2d(3, STEM, 7, 2, 3, bias=False)
        self.bn1 = norm(STEM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(BasicBlock, WIDTHS[0], 2)
        self.layer2 = self._make_layer(BasicBlock, WIDTHS[1], 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, WIDTHS[2], 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, WIDTHS[3], 2, stride=2)
        for m in self.modules():  # ResNet's own initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def build_model():
    body = TinyResNet()
    backbone = BackboneWithFPN(body, {'layer1': '0', 'layer2': '1', 'layer3': '2', 'layer4': '3'}, WIDTHS, FPN_CH, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(tuple((12 * 2 ** i,) for i in range(5)), ((0.5, 1.0, 2.0),) * 5)
    names = ['0', '1', '2', '3']
    return MaskRCNN(
        backbone, num_classes=None,
        min_size=128, max_size=128,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=200, rpn_pre_nms_top_n_test=200,
        rpn_post_nms_top_n_train=100, rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64, rpn_positive_fraction=0.5,
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2),
        box_head=TwoMLPHead(FPN_CH * 49, 256), box_predictor=FastRCNNPredictor(256, 5),
        box_batch_size_per_image=32, box_positive_fraction=0.5,
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
        mask_head=MaskRCNNHeads(FPN_CH, [32], 1), mask_predictor=MaskRCNNPredictor(32, 32, 5),
    )


def lr_factor(it, iters, warmup=50, warmup_factor=0.001, fractions=(0.8, 0.95), gamma=0.1):
    f = gamma ** sum(1 for s in fractions if it >= round(s * iters))
    if it < warmup:
        a = it / warmup
        f *= warmup_factor * (1 - a) + a
    return f


def batches(ds, batch, rng):
    while True:
        order = list(range(len(ds)))
        rng.shuffle(order)
        for i in range(0, len(order) - batch + 1, batch):
            yield [ds[j] for j in order[i:i + batch]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--iters', type=int, default=1500)
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    model = build_model()
    norm_params = {id(p) for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) for p in m.parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{'params': [p for p in params if id(p) not in norm_params], 'weight_decay': 1e-4},
              {'params': [p for p in params if id(p) in norm_params], 'weight_decay': 0.0}]
    opt = torch.optim.SGD(groups, lr=0.02, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(it, args.iters))

    train = Shapes(args.data, 'train', True)
    loader = batches(train, args.batch, random.Random(args.seed))
    model.train()
    t0, cpu0 = time.time(), time.process_time()
    for it in range(args.iters):
        items = next(loader)
        losses = model([x for x, _ in items], [t for _, t in items])
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise SystemExit(f'iteration {it}: loss is {loss.item()} ({ {k: v.item() for k, v in losses.items()} })')
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 100 == 0 or it == args.iters - 1:
            print(json.dumps({'iter': it, 'loss': round(loss.item(), 4), 'lr': opt.param_groups[0]['lr'], 's': round(time.time() - t0, 1)}), flush=True)
    train_s, train_cpu = time.time() - t0, time.process_time() - cpu0

    model.eval()
    val = Shapes(args.data, 'val', False)
    results = []
    with torch.no_grad():
        for i in range(len(val)):
            img, tgt = val[i]
            det = model([img])[0]
            for box, score, label, mask in zip(det['boxes'], det['scores'], det['labels'], det['masks']):
                x1, y1, x2, y2 = box.tolist()
                results.append({'image_id': tgt['image_id'], 'category_id': int(label), 'score': float(score),
                                'bbox': [x1, y1, x2 - x1, y2 - y1], 'segmentation': rle_encode(mask[0] >= 0.5)})
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump(results, f)
    summary = {'iters': args.iters, 'batch': args.batch, 'threads': args.threads, 'trainSeconds': train_s, 'trainCpuSeconds': train_cpu,
               'imagesPerSecond': args.iters * args.batch / train_s, 'imagesPerCpuSecond': args.iters * args.batch / train_cpu,
               'detections': len(results), 'torch': torch.__version__, 'torchvision': torchvision.__version__,
               'loadAverage': os.getloadavg()}
    with open(os.path.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f)
    print(json.dumps(summary))


if __name__ == '__main__':
    main()
