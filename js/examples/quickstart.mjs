// FMES_COMPONENT=fmes_queue.wasm node quickstart.mjs
import { FmesError, openComm } from "fmes";

const comm = await openComm("_COMM", { create: true }); // the component: $FMES_COMPONENT
comm.init(["planner", "coder"]);

comm.send({ from: "planner", to: "coder", priority: 3, payload: { task: "add --limit to receive" } });

for (const { message } of comm.claim("coder", "worker-1", { limit: 10 }).claimed) {
  console.log(`${message.type} from ${message.from}: ${JSON.stringify(message.payload)}`);
  comm.send({ from: "coder", to: message.from, type: "REPORT", payload: { done: message.id } });
  comm.ack("coder", "worker-1", message.file);
}
console.log(`waiting for planner: ${comm.peek("planner")}`);

try {
  comm.send({ from: "planner", to: "reviewer", payload: {} });
} catch (error) {
  if (!(error instanceof FmesError)) throw error;
  console.log(`${error.code}: known agents are ${error.details.known.join(", ")}`);
}
