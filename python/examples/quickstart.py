import fmes

# The queue component: FMES_COMPONENT names it (`fmes component -o FILE` writes it).
comm = fmes.Comm("_COMM", create=True)
comm.init(["planner", "coder"])

# The planner sends a task; payloads are any JSON-serializable object.
sent = comm.send("planner", "coder", {"task": "add --limit to receive"}, priority=3)
print(f"sent {sent.type} to {sent.to}: {sent.file}")

# Every reader sees every waiting message, in delivery order.
for message in comm.receive("coder"):
    print(f"coder has {message.type} from {message.sender}: {message.payload}")

# A worker claims the task for itself alone, does it, and acknowledges it.
for claimed in comm.claim("coder", "worker-1", lease=600):
    task = claimed.message.payload["task"]
    comm.send("coder", "planner", {"done": task}, message_type="REPORT")
    comm.ack("coder", "worker-1", claimed)
    print(f"worker-1 did {task!r} (delivery {claimed.deliveries})")

try:
    comm.send("coder", "reviewer", {"review": "please"})
except fmes.UnknownAgent as error:
    print(f"refused: {error}")

for report in comm.receive("planner"):
    print(f"planner has {report.type}: {report.payload}")
    comm.archive("planner", report)
print(f"waiting: coder {comm.peek('coder')}, planner {comm.peek('planner')}")
