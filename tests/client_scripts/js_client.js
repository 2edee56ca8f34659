// Makes question-answering calls with @huggingface/inference.
//
// Reads {"calls": [...]} as JSON on stdin and writes {"results": [...]} as
// JSON on stdout, one result per call, in order. Each call is an object with
// url (the endpointUrl), token (null for none), args (the questionAnswering
// arguments) and options (the client options, such as retry_on_error).
// A result is {output, elapsed_s} or {error: {name, className, message,
// status, requestId}, elapsed_s}.
"use strict";

const fs = require("fs");
const { InferenceClient } = require("@huggingface/inference");

async function runCall(call) {
  const started = performance.now();
  const client = new InferenceClient(call.token ?? undefined, {
    endpointUrl: call.url,
  });
  let result;
  try {
    const output = await client.questionAnswering(call.args, call.options);
    result = { output: output === undefined ? null : output };
  } catch (error) {
    result = {
      error: {
        name: error.name,
        className: error.constructor.name,
        message: String(error.message),
        status: error.httpResponse?.status ?? null,
        requestId: error.httpResponse?.requestId ?? null,
      },
    };
  }
  result.elapsed_s = (performance.now() - started) / 1000;
  return result;
}

async function main() {
  const request = JSON.parse(fs.readFileSync(0, "utf-8"));
  const results = [];
  for (const call of request.calls) {
    results.push(await runCall(call));
  }
  process.stdout.write(JSON.stringify({ results }));
}

main();
