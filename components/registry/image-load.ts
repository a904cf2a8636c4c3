/**
 * The action that loads the registry image from a tar carried into the gap. The script takes
 * its inputs from the environment (IMAGE_TAR, IMAGE) so no value is ever spliced into shell
 * text, and it fails when the tar did not provide the image the container will use.
 */
export const dockerLoadScript = [
  "set -eu",
  'docker load --input "$IMAGE_TAR"',
  'if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then',
  '  echo "the image tar $IMAGE_TAR does not contain $IMAGE; docker load listed the images it loaded above" >&2',
  "  exit 1",
  "fi",
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
