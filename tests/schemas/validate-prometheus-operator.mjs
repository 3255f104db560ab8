// Validates Prometheus Operator custom resources (ServiceMonitor, PrometheusRule, PodMonitor,
// ...) against the CRD schemas shipped by the pinned npm package
// @kubernetes-models/prometheus-operator (tests/schemas/package.json).
//
// Usage: node validate-prometheus-operator.mjs OBJECTS.json, a JSON array of Kubernetes objects
// (tests/integration/kubernetes.rs converts the YAML documents). Output: one line per object, "ok KIND/NAME" or "invalid KIND/NAME: why".
// Exit status 1 when any object is invalid or of a kind the package does not know.
import { readFileSync } from "node:fs";
import * as models from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));

let failed = false;
for (const object of objects) {
  const name = `${object.kind}/${object.metadata?.name ?? "?"}`;
  const Model = object.apiVersion === "monitoring.coreos.com/v1" ? models[object.kind] : undefined;
  if (typeof Model !== "function") {
    console.log(`invalid ${name}: no schema for apiVersion ${object.apiVersion} kind ${object.kind}`);
    failed = true;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok ${name}`);
  } catch (error) {
    console.log(`invalid ${name}: ${error.message.replace(/\s+/g, " ")}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
