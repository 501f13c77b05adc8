// The file access that data/ needs, as an interface: Node provides it in cli/node-io.ts, a browser
// page provides one over fetch/File objects. Nothing in data/ imports Node built-ins.
export interface FileIO {
  /** Reads a whole file as bytes; rejects with an error naming the path when it is missing. */
  readBytes(path: string): Promise<Uint8Array>;
  /** Reads a whole file as UTF-8 text. */
  readText(path: string): Promise<string>;
  /** Writes a file atomically where the platform can (temp file + rename), creating parent folders. */
  writeBytes(path: string, data: Uint8Array): Promise<void>;
  writeText(path: string, text: string): Promise<void>;
  /** Appends UTF-8 text to a file (creating it and its parent folders), for logs written line by line. */
  appendText(path: string, text: string): Promise<void>;
  /** True when the path exists. */
  exists(path: string): Promise<boolean>;
  /** Names (not paths) of the entries of a folder, sorted. */
  list(dir: string): Promise<string[]>;
  /** Joins path segments with the platform's separator. */
  join(...parts: string[]): string;
}
