import assert from "node:assert/strict";

import { ImageListError, parseImageList, parseImageListFile } from "../../../core/images/list-file";
import { canonicalImageReference } from "../../../core/images/reference";

describe("parseImageList", () => {
  it("reads `e2e.test --list-images` output: one reference per line, in order, duplicates kept", () => {
    const output = [
      "registry.k8s.io/e2e-test-images/agnhost:2.52",
      "registry.k8s.io/pause:3.10",
      "registry.k8s.io/e2e-test-images/agnhost:2.52",
      "",
    ].join("\n");
    assert.deepEqual(parseImageList(output, "e2e.txt").map(canonicalImageReference), [
      "registry.k8s.io/e2e-test-images/agnhost:2.52",
      "registry.k8s.io/pause:3.10",
      "registry.k8s.io/e2e-test-images/agnhost:2.52",
    ]);
  });

  it("accepts blank lines, '#' comments, surrounding whitespace and CRLF line ends", () => {
    const text = "# header\r\n\r\n  nginx:1.27  \r\n\t# indented comment\r\nbusybox\r\n";
    assert.deepEqual(parseImageList(text, "x.txt").map(canonicalImageReference), [
      "docker.io/library/nginx:1.27",
      "docker.io/library/busybox:latest",
    ]);
  });

  it("names source:line and the reason for a bad reference", () => {
    const text = "# ok\nregistry.k8s.io/pause:3.10\n\nfoo/Bar:1\n";
    assert.throws(
      () => parseImageList(text, "images/extra.txt"),
      (error: unknown) => {
        assert.ok(error instanceof ImageListError);
        assert.equal(error.sourceName, "images/extra.txt");
        assert.equal(error.lineNumber, 4);
        assert.match(error.message, /^images\/extra\.txt:4: /);
        assert.match(error.message, /uppercase letters are not allowed in repository 'foo\/Bar'/);
        return true;
      },
    );
  });

  it("rejects two references on one line and inline comments, saying what is allowed", () => {
    for (const line of ["nginx:1 busybox:1", "nginx:1 # pinned"]) {
      assert.throws(
        () => parseImageList(`pause:3.10\n${line}`, "list.txt"),
        (error: unknown) =>
          error instanceof ImageListError &&
          error.lineNumber === 2 &&
          /exactly one image reference per line/.test(error.message) &&
          /own line starting with '#'/.test(error.message),
      );
    }
  });

  it("returns an empty list for an empty or comment-only file", () => {
    assert.deepEqual(parseImageList("", "empty.txt"), []);
    assert.deepEqual(parseImageList("# nothing\n\n", "comments.txt"), []);
  });
});

describe("parseImageListFile", () => {
  const text = [
    "# Provenance: e2e.test --list-images",
    "#   of v1.31.0",
    "registry.k8s.io/pause:3.10",
    "# between images",
    "registry.k8s.io/etcd:3.5.15-0",
    "#",
    "# ==== TRAILER ====",
  ].join("\n");

  it("keeps comment text with line numbers, without the '#' and one space", () => {
    const parsed = parseImageListFile(text, "v1.31.txt");
    assert.deepEqual(parsed.comments, [
      { lineNumber: 1, text: "Provenance: e2e.test --list-images" },
      { lineNumber: 2, text: "  of v1.31.0" },
      { lineNumber: 4, text: "between images" },
      { lineNumber: 6, text: "" },
      { lineNumber: 7, text: "==== TRAILER ====" },
    ]);
  });

  it("splits header (before the first image) and trailer (after the last image)", () => {
    const parsed = parseImageListFile(text, "v1.31.txt");
    assert.deepEqual(
      parsed.header.map((comment) => comment.lineNumber),
      [1, 2],
    );
    assert.deepEqual(
      parsed.trailer.map((comment) => comment.lineNumber),
      [6, 7],
    );
    assert.deepEqual(
      parsed.entries.map((entry) => [entry.lineNumber, entry.text]),
      [
        [3, "registry.k8s.io/pause:3.10"],
        [5, "registry.k8s.io/etcd:3.5.15-0"],
      ],
    );
    assert.equal(parsed.sourceName, "v1.31.txt");
  });

  it("treats every comment of an image-less file as header", () => {
    const parsed = parseImageListFile("# a\n# b\n", "c.txt");
    assert.equal(parsed.header.length, 2);
    assert.equal(parsed.trailer.length, 0);
  });
});
