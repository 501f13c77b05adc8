#!/usr/bin/env python3
"""Dev-time reference for test/model-parity-file.test.ts: torchvision 0.14's GeneralizedRCNNTransform
(eval mode, ImageNet mean/std) on COCO photos decoded by PIL, at several (min_size, max_size), as the
SHA-256 of the padded batch tensor's float32 bytes plus its shape and image size. Writes
test/fixtures/transform/torchvision-inputs.json.   (Debian: python3-torch, python3-torchvision, python3-pil)
Usage: python3 tools/transform-reference.py"""
import hashlib, json, os
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.models.detection.transform import GeneralizedRCNNTransform

root = os.path.join(os.path.dirname(__file__), '..')
photos = ['000000017627.jpg', '000000025560.jpg', '000000006818.jpg', '000000037777.jpg', '000000555705.jpg']
sizes = [(320, 416), (800, 1333), (256, 320), (600, 1000)]
out = []
for name in photos:
    path = os.path.join('..', 'shared', 'data', 'tiny_coco', 'val2017', name)
    x = F.to_tensor(Image.open(os.path.join(root, path)).convert('RGB'))
    for mn, mx in sizes:
        t = GeneralizedRCNNTransform(mn, mx, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        t.eval()
        il, _ = t([x])
        b = il.tensors.contiguous().numpy().astype('<f4').tobytes()
        out.append(dict(file=path, min_size=mn, max_size=mx, original=list(x.shape[1:]), image_size=list(il.image_sizes[0]),
                        shape=list(il.tensors.shape), sha256=hashlib.sha256(b).hexdigest()))
with open(os.path.join(root, 'test', 'fixtures', 'transform', 'torchvision-inputs.json'), 'w') as f:
    json.dump(out, f, indent=1)
print(len(out), 'cases')
