/** Public API of the image core: references, lists, catalog, image set, mirror mapping, repo list. */

export * from "./reference";
export * from "./kubernetes-version";
export * from "./list-file";
export * from "./catalog";
export * from "./e2e-registries";
export * from "./image-set";
export * from "./mapping";
export * from "./repo-list";
export * from "./k3s-images";
