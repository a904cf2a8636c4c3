import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/**
 * The kubelet's own path to images: CRI `runtime.v1.ImageService` over the node's containerd
 * socket. A pull here honours containerd's `config_path` hosts.toml files, their CA and
 * skip_verify, and the CRI registry configuration, exactly as for a pod. `ctr --hosts-dir` does
 * not, so "a pod can pull" is only ever claimed from a call made here.
 */

/** Credentials as the kubelet passes them from an image pull secret. */
export interface CriAuth {
  readonly username?: string;
  readonly password?: string;
  /** base64 of `user:password`, as in a docker config.json. */
  readonly auth?: string;
  readonly serverAddress?: string;
}

export interface CriImage {
  readonly id: string;
  readonly repoTags: string[];
  readonly repoDigests: string[];
  readonly size: number;
}

type Callback<T> = (error: grpc.ServiceError | null, response: T) => void;
interface ImageServiceClient extends grpc.Client {
  PullImage(
    request: unknown,
    options: grpc.CallOptions,
    callback: Callback<{ imageRef: string }>,
  ): void;
  ImageStatus(
    request: unknown,
    options: grpc.CallOptions,
    callback: Callback<{
      image?: { id: string; repoTags: string[]; repoDigests: string[]; size: string };
    }>,
  ): void;
  RemoveImage(request: unknown, options: grpc.CallOptions, callback: Callback<unknown>): void;
}

let serviceConstructor: grpc.ServiceClientConstructor | undefined;

function imageServiceAt(socketPath: string): ImageServiceClient {
  if (!serviceConstructor) {
    const definition = protoLoader.loadSync(path.join(__dirname, "api.proto"), {
      keepCase: false,
      longs: String,
      defaults: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      runtime: { v1: { ImageService: grpc.ServiceClientConstructor } };
    };
    serviceConstructor = loaded.runtime.v1.ImageService;
  }
  return new serviceConstructor(
    `unix://${socketPath}`,
    grpc.credentials.createInsecure(),
  ) as unknown as ImageServiceClient;
}

function call<T>(
  socketPath: string,
  invoke: (client: ImageServiceClient, options: grpc.CallOptions, callback: Callback<T>) => void,
  timeoutMs: number,
): Promise<T> {
  const client = imageServiceAt(socketPath);
  return new Promise<T>((resolve, reject) => {
    invoke(client, { deadline: Date.now() + timeoutMs }, (error, response) => {
      client.close();
      if (error) reject(new Error(error.details || error.message));
      else resolve(response);
    });
  });
}

/** CRI PullImage, as the kubelet calls it for a pod's image; resolves to the image's id. */
export function criPullImage(
  socketPath: string,
  image: string,
  auth?: CriAuth,
  timeoutMs = 120_000,
): Promise<string> {
  const request = {
    image: { image },
    ...(auth
      ? {
          auth: {
            username: auth.username ?? "",
            password: auth.password ?? "",
            auth: auth.auth ?? "",
            serverAddress: auth.serverAddress ?? "",
          },
        }
      : {}),
  };
  return call<{ imageRef: string }>(
    socketPath,
    (client, options, callback) => client.PullImage(request, options, callback),
    timeoutMs,
  ).then((response) => response.imageRef);
}

/** CRI ImageStatus: the image as the node's runtime has it, or undefined when it has none. */
export async function criImageStatus(
  socketPath: string,
  image: string,
  timeoutMs = 30_000,
): Promise<CriImage | undefined> {
  const response = await call<{
    image?: { id: string; repoTags: string[]; repoDigests: string[]; size: string };
  }>(
    socketPath,
    (client, options, callback) => client.ImageStatus({ image: { image } }, options, callback),
    timeoutMs,
  );
  if (!response.image || response.image.id === "") return undefined;
  const { id, repoTags, repoDigests, size } = response.image;
  return { id, repoTags, repoDigests, size: Number(size) };
}

/** CRI RemoveImage (no error when the image is not there, as the CRI specifies). */
export async function criRemoveImage(
  socketPath: string,
  image: string,
  timeoutMs = 30_000,
): Promise<void> {
  await call<unknown>(
    socketPath,
    (client, options, callback) => client.RemoveImage({ image: { image } }, options, callback),
    timeoutMs,
  );
}
