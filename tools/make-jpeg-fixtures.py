#!/usr/bin/env python3
"""Writes test/fixtures/jpeg/: one small odd-sized photo crop saved by PIL in each JPEG flavour the
decoder must handle (baseline 4:2:0 / 4:2:2 / 4:4:4, progressive, restart markers, grayscale,
Adobe CMYK, EXIF orientation 6) and reference.json with PIL's `convert('RGB')` pixels of each
(base64 RGB bytes; PIL decodes with libjpeg-turbo: ISLOW IDCT, fancy upsampling).
Usage: python3 tools/make-jpeg-fixtures.py SOURCE.jpg   (Debian: python3-pil)"""
import base64, hashlib, json, os, sys
from PIL import Image

out = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'jpeg')
os.makedirs(out, exist_ok=True)
src = Image.open(sys.argv[1]).convert('RGB').crop((101, 57, 101 + 45, 57 + 29))  # 45x29: not a multiple of 8 or 16
exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90 CW to display
cases = {
    'baseline-420': (src, dict(quality=85, subsampling=2)),
    'baseline-422': (src, dict(quality=85, subsampling=1)),
    'baseline-444': (src, dict(quality=95, subsampling=0)),
    'progressive-420': (src, dict(quality=80, subsampling=2, progressive=True)),
    'restart-420': (src, dict(quality=80, subsampling=2, restart_marker_blocks=2)),
    'grayscale': (src.convert('L'), dict(quality=85)),
    'cmyk-adobe': (src.convert('CMYK'), dict(quality=90)),
    'exif-orientation-6': (src, dict(quality=85, exif=exif.tobytes())),
}
ref = {}
for name, (im, opts) in cases.items():
    path = os.path.join(out, name + '.jpg')
    im.save(path, 'JPEG', **opts)
    with Image.open(path) as back:
        mode = back.mode
        rgb = back.convert('RGB')
    raw = rgb.tobytes()
    ref[name] = dict(file=name + '.jpg', mode=mode, width=rgb.width, height=rgb.height,
                     sha256=hashlib.sha256(raw).hexdigest(), rgb=base64.b64encode(raw).decode())
with open(os.path.join(out, 'reference.json'), 'w') as f:
    json.dump(ref, f, indent=1)
print(', '.join(f"{k}: {v['mode']}" for k, v in ref.items()))
