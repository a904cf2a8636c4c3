/**
 * A k3s release's system image list: the `k3s-images.txt` asset published with each release
 * (one reference per line, the images k3s itself deploys: pause, coredns, local-path
 * provisioner, metrics-server, traefik, klipper). It is in list-file format, so it joins the
 * image set like any list file, labelled so origins say where each image came from.
 *
 * Pure: no I/O.
 */

import type { NamedImageList } from "./image-set";
import { ImageListError, parseImageListFile } from "./list-file";

/** The label a k3s image list has in origins and errors. */
export function k3sImageListLabel(fileName: string): string {
  return `${fileName} (k3s system images)`;
}

/**
 * Checks a k3s release's image list and returns it as a named list for the image set.
 *
 * @throws ImageListError naming the file and line of a bad reference, or the file when it
 * holds no image at all (most likely not the release's k3s-images.txt).
 */
export function k3sSystemImageList(text: string, fileName: string): NamedImageList {
  const name = k3sImageListLabel(fileName);
  const parsed = parseImageListFile(text, name);
  if (parsed.entries.length === 0) {
    throw new ImageListError(
      name,
      1,
      "holds no image reference; give the k3s-images.txt published with the k3s release the cluster runs",
    );
  }
  return { name, text };
}
