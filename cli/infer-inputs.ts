// What `infer` derives from its inputs besides pixels: COCO image ids from file names, and the
// table that names the model's labels and maps them to results' category ids.
import * as path from 'node:path';
import type { FileIO } from '../data/io.js';
import { categoriesTable, coco80Table, coco91Table, genericTable, type LabelTable } from '../data/coco-categories.js';

/** An error in what the user asked for: printed as one line without a stack. */
export class UserError extends Error {}

// COCO file names: 000000555705.jpg (2017) or COCO_val2014_000000555705.jpg (2014).
const COCO_NAME = /^(?:COCO_[A-Za-z0-9]+_)?(\d+)\.(?:jpe?g|png)$/i;

/** The image id in a COCO file name, or null. */
export function cocoImageId(file: string): number | null {
  const m = COCO_NAME.exec(path.basename(file));
  return m ? Number(m[1]) : null;
}

/**
 * image_id of every file: the number in its COCO name when every file has one and they are all
 * distinct (so results match a COCO annotation file), else the 1-based position in the list.
 */
export function imageIdsFor(files: readonly string[]): { ids: number[]; fromNames: boolean } {
  const fromNames = files.map(cocoImageId);
  if (fromNames.every((id) => id !== null) && new Set(fromNames).size === files.length) return { ids: fromNames as number[], fromNames: true };
  return { ids: files.map((_, i) => i + 1), fromNames: false };
}

function checkSize(t: LabelTable, numClasses: number): LabelTable {
  if (t.names.length !== numClasses) {
    throw new UserError(`classes from ${t.source}: ${t.names.length - 1} classes (+ background), but the model has ${numClasses - 1} (+ background)`);
  }
  return t;
}

/** A --classes file: a JSON list of names (background first optional) or an object with COCO `categories`. */
function tableFromJson(raw: unknown, file: string, numClasses: number): LabelTable {
  const source = `--classes ${file}`;
  if (Array.isArray(raw)) {
    if (!raw.every((n) => typeof n === 'string')) throw new UserError(`${source}: a list of classes must hold only names (strings)`);
    const names = raw as string[];
    // With background first (torchvision style) or without (one name per label 1..K).
    const withBg = names.length === numClasses ? names.slice(1) : names;
    return checkSize(categoriesTable(withBg.map((name, i) => ({ id: i + 1, name })), source), numClasses);
  }
  const cats = (raw as { categories?: unknown } | null)?.categories;
  if (!Array.isArray(cats) || !cats.every((c) => c && typeof c.id === 'number' && typeof c.name === 'string')) {
    throw new UserError(`${source}: expected a JSON list of class names or an object with COCO "categories" [{id, name}, ...]`);
  }
  // Sorted by id: the contiguous numbering of data/coco.ts and of training checkpoints.
  const sorted = [...(cats as { id: number; name: string }[])].sort((a, b) => a.id - b.id);
  return checkSize(categoriesTable(sorted, source), numClasses);
}

/**
 * The label table: --classes coco or FILE.json when given; else the categories stored in the
 * checkpoint; else COCO's 91-index table for a 91-class model; else, for a Detectron2 checkpoint
 * (`keyStyle` 'detectron2') with 80 classes, COCO's 80 classes in contiguous order (Detectron2's
 * model zoo numbers classes 0..79, the loader makes them labels 1..80); else generic names.
 * `--classes coco` is the 80-class table for an 81-class model, the 91-index one otherwise.
 */
export async function resolveLabelTable(
  spec: string | undefined,
  stored: readonly { id: number; name: string }[] | undefined,
  numClasses: number,
  io: FileIO,
  keyStyle?: string,
): Promise<LabelTable> {
  if (spec === 'coco') return checkSize(numClasses === 81 ? coco80Table() : coco91Table(), numClasses);
  if (spec !== undefined) {
    let raw: unknown;
    try {
      raw = JSON.parse(await io.readText(spec));
    } catch (e) {
      throw new UserError(`--classes ${spec}: ${(e as Error).message}`);
    }
    return tableFromJson(raw, spec, numClasses);
  }
  if (stored && stored.length) return checkSize(categoriesTable(stored, 'the checkpoint\'s categories'), numClasses);
  if (numClasses === 91) return coco91Table();
  if (numClasses === 81 && keyStyle === 'detectron2') return coco80Table();
  return genericTable(numClasses);
}
