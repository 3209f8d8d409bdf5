// Reads an AI SDK UI message stream with the `ai` package's own reader and prints what it made
// of it, as one JSON object on stdout (tests/test_aisdk_node.py runs this).
//
//   node read-ui-stream.mjs <url> [json-body]     (POST when a body is given, else GET)
//
// AI_PACKAGE names the package to read with (default "ai"; package.json installs other
// versions under aliases such as "ai-5").
//
// Output: {status, headers, chunks: [types in order], finishReason, invalid: [validation
// errors], errors: [onError messages], message: the last UIMessage snapshot, snapshots}.
// The reader is the one DefaultChatTransport uses: parseJsonEventStream over
// uiMessageChunkSchema, then readUIMessageStream (every version package.json installs exports
// them; ai 5.0.0 did not).
const { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } = await import(
  process.env.AI_PACKAGE || 'ai'
);

const [url, body] = process.argv.slice(2);
if (!url) {
  console.error('usage: node read-ui-stream.mjs <url> [json-body]');
  process.exit(2);
}

const response = await fetch(url, {
  method: body ? 'POST' : 'GET',
  headers: body ? { 'content-type': 'application/json' } : {},
  body,
  signal: AbortSignal.timeout(30_000),
});

const out = {
  status: response.status,
  headers: {
    'content-type': response.headers.get('content-type'),
    'x-vercel-ai-ui-message-stream': response.headers.get('x-vercel-ai-ui-message-stream'),
  },
  chunks: [],
  finishReason: null,
  invalid: [],
  errors: [],
  message: null,
  snapshots: 0,
};

const chunks = parseJsonEventStream({ stream: response.body, schema: uiMessageChunkSchema })
  .pipeThrough(
    new TransformStream({
      transform(result, controller) {
        if (!result.success) {
          // A part the SDK's schema rejects: record it and drop it, so the test sees why.
          out.invalid.push(String(result.error?.message ?? result.error));
          return;
        }
        const chunk = result.value;
        out.chunks.push(chunk.type);
        if (chunk.type === 'finish') out.finishReason = chunk.finishReason ?? null;
        controller.enqueue(chunk);
      },
    }),
  );

try {
  for await (const message of readUIMessageStream({
    stream: chunks,
    onError: (error) => out.errors.push(String(error?.message ?? error)),
  })) {
    out.message = message;
    out.snapshots += 1;
  }
} catch (error) {
  out.errors.push(`reader threw: ${error?.message ?? error}`);
}

process.stdout.write(JSON.stringify(out) + '\n');
