/** Node registry configuration: renderers, per-node file plans and the node script. Pure. */
export * from "./settings";
export * from "./toml";
export * from "./renderers";
export * from "./plan";
export * from "./script";
export * from "./openshift";
export * from "./k3s";
export * from "./preload";
export * from "./preload-archive";
