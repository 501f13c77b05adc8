#!/usr/bin/env python3
"""Dev-time reference decodes for bench/decode.ts: every JPEG under the given folders decoded by PIL
(libjpeg-turbo, `Image.open(f).convert('RGB')`, no EXIF rotation, the way torchvision's COCO
datasets load images), written as raw RGB bytes <out>/<basename>.rgb plus <out>/index.json
({name: [width, height, sha256]}).
Usage: python3 tools/jpeg-reference.py OUT_DIR DIR...   (Debian: python3-pil)"""
import hashlib, json, os, sys
from PIL import Image

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
index = {}
for d in sys.argv[2:]:
    for name in sorted(os.listdir(d)):
        if not name.lower().endswith(('.jpg', '.jpeg')):
            continue
        with Image.open(os.path.join(d, name)) as im:
            rgb = im.convert('RGB')
        raw = rgb.tobytes()
        with open(os.path.join(out, name + '.rgb'), 'wb') as f:
            f.write(raw)
        index[os.path.join(d, name)] = [rgb.width, rgb.height, hashlib.sha256(raw).hexdigest()]
with open(os.path.join(out, 'index.json'), 'w') as f:
    json.dump(index, f, indent=1)
print(f'{len(index)} images -> {out}')
