/**
 * Image list files: the output of `e2e.test --list-images` / `hydrophone --list-images`, one
 * reference per line. Blank lines and `#` comment lines are allowed as well, because curated
 * lists (such as the shipped catalog) carry provenance notes. Pure: no I/O.
 */

import { ImageReference, InvalidImageReferenceError, parseImageReference } from "./reference";

/** One image line of a list file. */
export interface ImageListEntry {
  readonly reference: ImageReference;
  /** 1-based line number in the source. */
  readonly lineNumber: number;
  /** The reference as written (surrounding whitespace removed). */
  readonly text: string;
}

/** One comment line of a list file. */
export interface ImageListComment {
  /** 1-based line number in the source. */
  readonly lineNumber: number;
  /** The comment without its leading `#` and the one space that usually follows it. */
  readonly text: string;
}

/** A parsed list file with its comments kept, split by where they stand. */
export interface ParsedImageList {
  readonly sourceName: string;
  readonly entries: readonly ImageListEntry[];
  /** Every comment line, in file order. */
  readonly comments: readonly ImageListComment[];
  /** Comments before the first image (a file's provenance header). */
  readonly header: readonly ImageListComment[];
  /** Comments after the last image (a file's trailer). */
  readonly trailer: readonly ImageListComment[];
}

/** A line of a list file that is neither blank, a comment, nor a valid image reference. */
export class ImageListError extends Error {
  override readonly name = "ImageListError";

  constructor(
    /** Name of the list (file name or other label), as given by the caller. */
    readonly sourceName: string,
    /** 1-based line number of the offending line. */
    readonly lineNumber: number,
    /** What is wrong with the line and what is allowed. */
    readonly reason: string,
  ) {
    super(`${sourceName}:${lineNumber}: ${reason}`);
  }
}

/**
 * Parses an image list and keeps its comments.
 *
 * @param sourceName used in error messages as `${sourceName}:${lineNumber}`.
 * @throws ImageListError naming the first bad line.
 */
export function parseImageListFile(text: string, sourceName: string): ParsedImageList {
  const entries: ImageListEntry[] = [];
  const comments: ImageListComment[] = [];

  // Lines may end in \r\n (files edited on Windows); trimming handles the \r.
  text.split("\n").forEach((rawLine, index) => {
    const lineNumber = index + 1;
    const line = rawLine.trim();
    if (line === "") return;
    if (line.startsWith("#")) {
      comments.push({ lineNumber, text: line.slice(1).replace(/^ /, "") });
      return;
    }
    if (/\s/.test(line)) {
      throw new ImageListError(
        sourceName,
        lineNumber,
        `expected exactly one image reference per line, found ${JSON.stringify(line)}; ` +
          `comments must be on their own line starting with '#'`,
      );
    }
    try {
      entries.push({ reference: parseImageReference(line), lineNumber, text: line });
    } catch (error) {
      if (!(error instanceof InvalidImageReferenceError)) throw error;
      throw new ImageListError(sourceName, lineNumber, error.message);
    }
  });

  const firstImageLine = entries[0]?.lineNumber ?? Number.POSITIVE_INFINITY;
  const lastImageLine = entries[entries.length - 1]?.lineNumber ?? Number.POSITIVE_INFINITY;
  return {
    sourceName,
    entries,
    comments,
    header: comments.filter((comment) => comment.lineNumber < firstImageLine),
    trailer: comments.filter((comment) => comment.lineNumber > lastImageLine),
  };
}

/**
 * Parses an image list into its references, in file order (duplicates kept).
 *
 * @throws ImageListError naming `${sourceName}:${lineNumber}` of the first bad line.
 */
export function parseImageList(text: string, sourceName: string): ImageReference[] {
  return parseImageListFile(text, sourceName).entries.map((entry) => entry.reference);
}
