/**
 * Every value the operator takes from @kubernetes/client-node (types may come from the package itself: they are
 * erased). The image's build bundles this one module with what it reaches (scripts/build.ts), so the controller
 * loads only the API groups and helpers named here: client-node has no entry point smaller than everything, since
 * even its KubeConfig (config.js) imports gen/index.js, every API group and model, about 800 modules and 80 MiB.
 */
export {
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  KubeConfig,
  makeInformer,
  NetworkingV1Api,
  PatchStrategy,
  ServerConfiguration,
  setHeaderOptions,
  V1MicroTime,
} from "@kubernetes/client-node";
