/**
 * The action that loads the registry image from a tar carried into the gap. The script takes
 * its inputs from the environment (IMAGE_TAR, IMAGE) so no value is ever spliced into shell
 * text, and it fails when the tar did not provide the image the container will use.
 *
 * When the image was not on the engine before, stdout records what was loaded (name and image
 * ID); on destroy, `dockerUnloadScript` removes exactly that image again, and only while the
 * name still points at it (a newer tar loaded since keeps its image).
 */
export const loadedMarker = "airgap-conformance: loaded";

export const dockerLoadScript = [
  "set -eu",
  'if docker image inspect "$IMAGE" >/dev/null 2>&1; then present=1; else present=0; fi',
  'docker load --input "$IMAGE_TAR" >&2',
  'if ! id=$(docker image inspect --format "{{.Id}}" "$IMAGE" 2>/dev/null); then',
  '  echo "the image tar $IMAGE_TAR does not contain $IMAGE; docker load listed the images it loaded above" >&2',
  "  exit 1",
  "fi",
  `if [ "$present" = 0 ]; then echo "${loadedMarker} $IMAGE $id"; fi`,
].join("\n");

/** Destroy: removes the image this stack loaded (see dockerLoadScript); best effort. */
export const dockerUnloadScript = [
  "set -eu",
  `loaded=$(printf '%s\\n' "\${PULUMI_COMMAND_STDOUT:-}" | grep -F "${loadedMarker} $IMAGE " | tail -n 1 | awk '{print $NF}')`,
  '[ -n "$loaded" ] || exit 0',
  'current=$(docker image inspect --format "{{.Id}}" "$IMAGE" 2>/dev/null || true)',
  '[ "$current" = "$loaded" ] || exit 0',
  'docker image rm "$IMAGE" >&2 || echo "warning: could not remove the registry image $IMAGE that was loaded from $IMAGE_TAR" >&2',
].join("\n");

/** Environment for dockerLoadScript. DOCKER_HOST follows the provider's host override. */
export function dockerLoadEnvironment(args: {
  imageTar: string;
  image: string;
  dockerHost?: string;
}): Record<string, string> {
  return {
    IMAGE_TAR: args.imageTar,
    IMAGE: args.image,
    ...(args.dockerHost ? { DOCKER_HOST: args.dockerHost } : {}),
  };
}
