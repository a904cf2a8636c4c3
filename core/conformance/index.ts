/** Public API of the conformance core: the plan, its objects, and the decisions of the actions. */

export * from "./errors";
export * from "./go-regex";
export * from "./plan";
export * from "./objects";
export * from "./pod-state";
export * from "./progress";
export * from "./junit";
export * from "./report";
export * from "./kubectl";
export * from "./kubeconfig";
export * from "./preflight";
export * from "./action";
