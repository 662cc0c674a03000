// The `mpy` target's process: MicroPython (WebAssembly) running the DUT app, behind a TCP server on loopback.
//
//   node bridge.mjs --root DIR [--app main] [--port 0] [--heap BYTES] [--control]
//   node bridge.mjs --root DIR --run MODULE [--heap BYTES]
//
// DIR holds the modules to run (viperhttp/ as .mpy or .py, the DUT app, bridge_streams); it is copied into the
// VM's in-memory filesystem. Node accepts TCP connections and moves their bytes into and out of the VM
// unchanged; inside the VM, bridge_streams turns each connection into a reader/writer pair for
// `Server.handle_connection`. MicroPython's asyncio in this port schedules its tasks with JS timers, so Node's
// event loop drives both the sockets and the VM's tasks. Prints `listening on http://127.0.0.1:PORT` once
// ready; exits on SIGINT/SIGTERM. --control also listens on a second loopback port (printed as
// `control on 127.0.0.1:PORT`) for one-line commands answered by bridge_streams.control (heap figures for the
// memory benchmark), outside the app's own connections. --run MODULE instead imports MODULE, calls its
// main() (which prints what it has to say) and exits with main()'s return value: the core tests in the VM.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";

const HOST = "127.0.0.1"; // loopback only, whatever the caller asks

const { values: options } = parseArgs({
  options: {
    root: { type: "string" },
    app: { type: "string", default: "main" },
    port: { type: "string", default: "0" },
    heap: { type: "string", default: String(1024 * 1024) },
    control: { type: "boolean", default: false },
    run: { type: "string" },
  },
});

function fail(message) {
  console.error(`bridge: ${message}`);
  process.exit(2);
}

if (!options.root || !fs.statSync(options.root, { throwIfNoEntry: false })?.isDirectory()) {
  fail(`--root must name a directory of modules to run (got ${options.root ?? "nothing"})`);
}
const port = Number(options.port);
const heapBytes = Number(options.heap);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0-65535 (got ${options.port})`);
if (!Number.isInteger(heapBytes) || heapBytes < 64 * 1024) fail(`--heap must be at least 65536 bytes (got ${options.heap})`);

// The package exports no view of the VM's linear memory, and copying bytes through its object proxies costs
// about 40 ms per 64 KiB. Keeping the Memory the module instantiates with lets bytes move with one typed-array
// copy instead (about 0.1 ms per 64 KiB).
let wasmMemory = null;
const instantiate = WebAssembly.instantiate;
WebAssembly.instantiate = async function (...args) {
  const result = await instantiate.apply(WebAssembly, args);
  wasmMemory = (result.instance ?? result).exports.memory ?? wasmMemory;
  return result;
};

let loadMicroPython;
try {
  ({ loadMicroPython } = await import("@micropython/micropython-webassembly-pyscript"));
} catch (error) {
  fail(`cannot load @micropython/micropython-webassembly-pyscript (${error.code ?? error.message}): run npm ci --prefix hil/mpy`);
}

const mp = await loadMicroPython({
  heapsize: heapBytes,
  stdout: (line) => console.log(line),
  stderr: (line) => console.error(line),
});
WebAssembly.instantiate = instantiate;
if (!(wasmMemory instanceof WebAssembly.Memory)) fail("the MicroPython module exposed no WebAssembly memory");

// Mirror DIR into the VM's filesystem under /app.
const VM_ROOT = "/app";
function copyTree(hostDir, vmDir) {
  mp.FS.mkdir(vmDir);
  for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
    const hostPath = path.join(hostDir, entry.name);
    if (entry.isDirectory()) copyTree(hostPath, `${vmDir}/${entry.name}`);
    else if (entry.isFile()) mp.FS.writeFile(`${vmDir}/${entry.name}`, fs.readFileSync(hostPath));
  }
}
copyTree(options.root, VM_ROOT);
// the app reads its files (dut_config.json) relative to the working directory, as on a board where it is /
mp.runPython(`import os, sys; sys.path.insert(0, "${VM_ROOT}"); os.chdir("${VM_ROOT}")`);

if (options.run) {
  let status;
  try {
    status = mp.pyimport(options.run).main();
  } catch (error) {
    fail(`${options.run}.main() raised: ${error.type ?? ""} ${error.message}`.trim());
  }
  process.exit(Number.isInteger(status) ? status : 0);
}

// One entry per open TCP connection: the socket, its Python stream, and what is waiting to be copied in.
const connections = new Map();
let nextConnectionId = 1;

function memoryView(address, length) {
  return new Uint8Array(wasmMemory.buffer, address, length); // buffer may have grown: take it fresh each time
}

function whenSocket(connection, events) {
  // a Promise resolved at the first of `events` on the socket (at once if it is already gone)
  const { socket } = connection;
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const settle = () => {
      for (const event of events) socket.off(event, settle);
      resolve();
    };
    for (const event of events) socket.on(event, settle);
  });
}

mp.registerJsModule("bridge_js", {
  copy_into(id, address) {
    const connection = connections.get(id);
    memoryView(address, connection.incoming.length).set(connection.incoming);
  },
  write(id, address, length) {
    const socket = connections.get(id)?.socket;
    if (socket && !socket.destroyed) socket.write(Buffer.from(memoryView(address, length))); // Buffer.from copies
  },
  buffered: (id) => connections.get(id)?.socket.writableLength ?? 0, // bytes Node holds that the kernel has not taken
  congested(id) {
    // over the high-water mark, where Node has promised a "drain" event
    const socket = connections.get(id)?.socket;
    return Boolean(socket && !socket.destroyed && socket.writableLength >= socket.writableHighWaterMark);
  },
  drained: (id) => (connections.has(id) ? whenSocket(connections.get(id), ["drain", "close"]) : Promise.resolve()),
  closed: (id) => (connections.has(id) ? whenSocket(connections.get(id), ["close"]) : Promise.resolve()),
  pause: (id) => connections.get(id)?.socket.pause(),
  resume: (id) => connections.get(id)?.socket.resume(),
  end(id) {
    // like closing an asyncio stream: flush what is queued, then close both directions
    const socket = connections.get(id)?.socket;
    if (socket && !socket.destroyed && !socket.writableEnded) socket.end(() => socket.destroy());
  },
  destroy: (id) => connections.get(id)?.socket.destroy(),
});

let bridge;
let appSummary;
try {
  bridge = mp.pyimport("bridge_streams");
  appSummary = bridge.serve(options.app);
} catch (error) {
  fail(`the DUT app did not load in the VM: ${error.type ?? ""} ${error.message}`.trim());
}

function report(where, error) {
  console.error(`bridge: ${where}: ${error.type ? `${error.type}: ` : ""}${error.message}`);
}

// allowHalfOpen: a client that shuts down its sending side still gets its response, as with asyncio streams
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  const id = nextConnectionId++;
  const connection = { socket, stream: null, incoming: null };
  connections.set(id, connection);
  socket.setNoDelay(true);
  try {
    connection.stream = bridge.open_connection(id, socket.remoteAddress ?? HOST, socket.remotePort ?? 0);
  } catch (error) {
    report("open_connection", error);
    socket.destroy();
    connections.delete(id);
    return;
  }
  // one proxy per method for the connection's life: looking a method up on a Python object makes a new proxy,
  // whose Python side lives until JavaScript's collector finalizes it
  const feed = connection.stream.feed;
  socket.on("data", (chunk) => {
    connection.incoming = chunk;
    try {
      feed(chunk.length);
    } catch (error) {
      report("feed", error);
      socket.destroy();
    } finally {
      connection.incoming = null;
    }
  });
  socket.on("end", () => connection.stream.feed_eof());
  socket.on("error", () => {}); // a reset by the peer; "close" follows and says the rest
  socket.on("close", () => {
    connections.delete(id);
    connection.stream.connection_lost();
  });
});

server.on("error", (error) => fail(`cannot listen on ${HOST}:${port}: ${error.message}`));
// Python objects that JavaScript holds proxies to stay alive until JavaScript's collector finalizes the proxies,
// whenever that runs; a heap figure must not depend on it. With --expose-gc, collect and let the finalizers run
// (they run in later tasks) before Python measures.
async function collectProxies() {
  if (typeof globalThis.gc !== "function") return;
  for (let round = 0; round < 3; round++) {
    globalThis.gc();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

// One-line commands, one reply line each; Python runs them between the VM's tasks (Node is single-threaded).
const controlServer = options.control
  ? net.createServer((socket) => {
      let pending = "";
      socket.setEncoding("utf8");
      let queue = Promise.resolve(); // commands answered in order, each after the JS collection before it
      socket.on("data", (text) => {
        pending += text;
        let end;
        while ((end = pending.indexOf("\n")) >= 0) {
          const command = pending.slice(0, end).trim();
          pending = pending.slice(end + 1);
          queue = queue.then(async () => {
            await collectProxies();
            let reply;
            try {
              reply = String(bridge.control(command));
            } catch (error) {
              reply = `error ${error.type ?? ""} ${error.message}`;
            }
            socket.write(reply + "\n");
          });
        }
      });
      socket.on("error", () => {});
    })
  : null;

function listen() {
  server.listen(port, HOST, () => {
    const { port: boundPort } = server.address();
    console.log(`vm: ${appSummary}; ready ${Math.round(performance.now())} ms after process start`);
    console.log(`listening on http://${HOST}:${boundPort}`);
  });
}
if (controlServer) {
  controlServer.on("error", (error) => fail(`cannot listen for control on ${HOST}: ${error.message}`));
  controlServer.listen(0, HOST, () => {
    console.log(`control on ${HOST}:${controlServer.address().port}`);
    listen(); // after, so "listening on" means both are ready
  });
} else {
  listen();
}

function shutdown() {
  server.close();
  controlServer?.close();
  for (const { socket } of connections.values()) socket.destroy();
  process.exit(0);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
