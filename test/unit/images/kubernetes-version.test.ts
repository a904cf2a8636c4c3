import assert from "node:assert/strict";

import {
  InvalidKubernetesVersionError,
  parseKubernetesVersion,
  releaseTag,
} from "../../../core/images/kubernetes-version";

describe("parseKubernetesVersion", () => {
  const cases: Array<[string, string, string | undefined]> = [
    ["1.31", "1.31", undefined],
    ["v1.31", "1.31", undefined],
    ["v1.31.4", "1.31", "v1.31.4"],
    ["1.31.0-rc.1", "1.31", "v1.31.0"],
    ["v1.31.4+k3s1", "1.31", "v1.31.4"],
    ["v1.30.2-eks-1552ad0", "1.30", "v1.30.2"],
    [" v1.33.1 ", "1.33", "v1.33.1"],
  ];
  for (const [input, minor, tag] of cases) {
    it(`${JSON.stringify(input)} -> minor ${minor}, release tag ${tag ?? "(none)"}`, () => {
      const version = parseKubernetesVersion(input);
      assert.equal(version.minorVersion, minor);
      assert.equal(releaseTag(version), tag);
    });
  }

  for (const input of ["", "1", "v1", "1.31.x", "one.two", "1.031", "v1.31.4.5", "latest"]) {
    it(`rejects ${JSON.stringify(input)} with the accepted forms`, () => {
      assert.throws(
        () => parseKubernetesVersion(input),
        (error: unknown) =>
          error instanceof InvalidKubernetesVersionError &&
          error.input === input &&
          /expected \[v\]MAJOR\.MINOR\[\.PATCH\]/.test(error.message),
      );
    });
  }
});
