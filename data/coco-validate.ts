// Structural validation of a parsed COCO instances JSON. A bad file should fail at load time with a
// message that points at the exact record (`annotations[12].bbox must be 4 numbers`), not deep in
// training with a NaN loss. Collects several problems at once so a broken export can be fixed in
// one pass.
import type { CocoInstances } from './coco-types.js';

const MAX_REPORTED = 20;

export class CocoFormatError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    const shown = problems.slice(0, MAX_REPORTED);
    const more = problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : '';
    super(`${source}: invalid COCO instances file:\n  ${shown.join('\n  ')}${more}`);
    this.name = 'CocoFormatError';
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isInt = (v: unknown): v is number => Number.isInteger(v);

/**
 * Checks `raw` and returns it typed, normalising two optional fields in place: a missing `iscrowd`
 * becomes 0 and a missing `area` becomes the bbox area (what a detection-only export would mean).
 * Throws CocoFormatError naming `source` and each bad field.
 */
export function validateCoco(raw: unknown, source: string): CocoInstances {
  const problems: string[] = [];
  const bad = (msg: string): void => {
    problems.push(msg);
  };
  if (!isObj(raw)) throw new CocoFormatError(source, ['top level must be a JSON object']);
  for (const key of ['images', 'annotations', 'categories']) {
    if (!Array.isArray(raw[key])) bad(`${key} must be an array`);
  }
  if (problems.length) throw new CocoFormatError(source, problems);
  const images = raw.images as unknown[];
  const anns = raw.annotations as unknown[];
  const cats = raw.categories as unknown[];

  const imageSize = new Map<number, [number, number]>();
  images.forEach((im, i) => {
    const at = `images[${i}]`;
    if (!isObj(im)) return bad(`${at} must be an object`);
    if (!isInt(im.id)) bad(`${at}.id must be an integer`);
    else if (imageSize.has(im.id)) bad(`${at}.id ${im.id} is a duplicate`);
    if (!isInt(im.width) || im.width <= 0) bad(`${at}.width must be a positive integer`);
    if (!isInt(im.height) || im.height <= 0) bad(`${at}.height must be a positive integer`);
    if (typeof im.file_name !== 'string' || im.file_name === '') bad(`${at}.file_name must be a non-empty string`);
    if (isInt(im.id)) imageSize.set(im.id, [im.height as number, im.width as number]);
  });

  const catIds = new Set<number>();
  cats.forEach((c, i) => {
    const at = `categories[${i}]`;
    if (!isObj(c)) return bad(`${at} must be an object`);
    if (!isInt(c.id)) bad(`${at}.id must be an integer`);
    else if (catIds.has(c.id)) bad(`${at}.id ${c.id} is a duplicate`);
    else catIds.add(c.id);
    if (typeof c.name !== 'string') bad(`${at}.name must be a string`);
  });

  const annIds = new Set<number>();
  anns.forEach((a, i) => {
    const at = `annotations[${i}]`;
    if (!isObj(a)) return bad(`${at} must be an object`);
    if (!isInt(a.id)) bad(`${at}.id must be an integer`);
    else if (annIds.has(a.id)) bad(`${at}.id ${a.id} is a duplicate`);
    else annIds.add(a.id);
    if (!isInt(a.image_id)) bad(`${at}.image_id must be an integer`);
    else if (!imageSize.has(a.image_id)) bad(`${at}.image_id ${a.image_id} names no image`);
    if (!isInt(a.category_id)) bad(`${at}.category_id must be an integer`);
    else if (!catIds.has(a.category_id)) bad(`${at}.category_id ${a.category_id} names no category`);
    const bb = a.bbox;
    if (!Array.isArray(bb) || bb.length !== 4 || !bb.every(isNum)) bad(`${at}.bbox must be 4 numbers`);
    else if ((bb[2] as number) < 0 || (bb[3] as number) < 0) bad(`${at}.bbox width and height must be >= 0`);
    if (a.iscrowd === undefined) a.iscrowd = 0;
    else if (a.iscrowd !== 0 && a.iscrowd !== 1) bad(`${at}.iscrowd must be 0 or 1`);
    if (a.area === undefined) {
      if (Array.isArray(bb) && bb.length === 4) a.area = (bb[2] as number) * (bb[3] as number);
    } else if (!isNum(a.area) || a.area < 0) bad(`${at}.area must be a number >= 0`);
    if (a.segmentation !== undefined) {
      const size = isInt(a.image_id) ? imageSize.get(a.image_id) : undefined;
      checkSegmentation(a.segmentation, `${at}.segmentation`, size, bad);
    }
  });
  if (problems.length) throw new CocoFormatError(source, problems);
  return raw as unknown as CocoInstances;
}

function checkSegmentation(
  s: unknown,
  at: string,
  imageSize: [number, number] | undefined,
  bad: (msg: string) => void,
): void {
  if (Array.isArray(s)) {
    s.forEach((poly, j) => {
      if (!Array.isArray(poly) || !poly.every(isNum)) bad(`${at}[${j}] must be an array of numbers`);
      else if (poly.length % 2 !== 0) bad(`${at}[${j}] must have an even number of coordinates`);
    });
    return;
  }
  if (!isObj(s)) return bad(`${at} must be polygons (array of arrays) or an RLE object`);
  const size = s.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((v) => isInt(v) && v >= 0)) {
    return bad(`${at}.size must be [height, width]`);
  }
  if (imageSize && (size[0] !== imageSize[0] || size[1] !== imageSize[1])) {
    bad(`${at}.size [${size.join(', ')}] differs from the image's [height, width] [${imageSize.join(', ')}]`);
  }
  const counts = s.counts;
  if (typeof counts === 'string') return;
  if (!Array.isArray(counts) || !counts.every((v) => isInt(v) && v >= 0)) {
    return bad(`${at}.counts must be a string or an array of non-negative integers`);
  }
  const total = (counts as number[]).reduce((x, y) => x + y, 0);
  if (total !== size[0] * size[1]) bad(`${at}.counts sum to ${total}, not height*width = ${size[0] * size[1]}`);
}
