// Reading the entries of a ZIP archive that stores them uncompressed, as torch.save's zip format
// does (PyTorch's writer never compresses, and pads entries so tensor data is aligned). ZIP64
// sizes and offsets are understood; compressed entries are refused with an error naming them.

export interface ZipEntry {
  name: string;
  /** The entry's bytes (a view into the archive). */
  data: Uint8Array;
}

const EOCD = 0x06054b50, ZIP64_EOCD = 0x06064b50, ZIP64_LOCATOR = 0x07064b50, CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

export function isZip(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;
}

/** The archive's stored entries by name. `source` names the file in errors. */
export function readZip(bytes: Uint8Array, source = 'zip'): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (msg: string): never => {
    throw new Error(`${source}: ${msg}`);
  };
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('not a complete ZIP archive (no end-of-central-directory record; truncated?)');
  let count = view.getUint16(eocd + 10, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  if ((count === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && view.getUint32(eocd - 20, true) === ZIP64_LOCATOR) {
    const z = Number(view.getBigUint64(eocd - 12, true));
    if (z + 56 > bytes.length || view.getUint32(z, true) !== ZIP64_EOCD) fail('broken ZIP64 end record');
    count = Number(view.getBigUint64(z + 32, true));
    cdOffset = Number(view.getBigUint64(z + 48, true));
  }
  const entries = new Map<string, ZipEntry>();
  const dec = new TextDecoder();
  let p = cdOffset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > bytes.length || view.getUint32(p, true) !== CENTRAL) fail(`central directory entry ${k} is corrupt`);
    const method = view.getUint16(p + 10, true);
    let size = view.getUint32(p + 20, true);
    const nameLen = view.getUint16(p + 28, true), extraLen = view.getUint16(p + 30, true), commentLen = view.getUint16(p + 32, true);
    let local = view.getUint32(p + 42, true);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extra field (id 1): the 64-bit values of whichever fields are 0xFFFFFFFF, in order.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; ) {
      const id = view.getUint16(e, true), len = view.getUint16(e + 2, true);
      if (id === 1) {
        let q = e + 4;
        if (size === 0xffffffff) { size = Number(view.getBigUint64(q + 8, true)); q += 16; } // uncompressed, then compressed
        if (local === 0xffffffff) local = Number(view.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    if (method !== 0) fail(`entry '${name}' is compressed (method ${method}); only stored entries (what torch.save writes) are read`);
    if (local + 30 > bytes.length || view.getUint32(local, true) !== LOCAL) fail(`local header of '${name}' is corrupt`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (start + size > bytes.length) fail(`entry '${name}' runs past the end of the file (truncated?)`);
    entries.set(name, { name, data: bytes.subarray(start, start + size) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}
