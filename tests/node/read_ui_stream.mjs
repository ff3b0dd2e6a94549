#!/usr/bin/env node
// Reads one AI SDK UI message stream (protocol v1) the way a `useChat` front end does, with
// the AI SDK's own code, and prints what it saw as ONE JSON object on stdout.
//
// Input: a JSON config on stdin (see README.md):
//   {"url": "...", "method": "POST", "headers": {...}, "body": {...}, "timeoutMs": 30000}
//   or, instead of "body", "text" (plus optional "messages", the chat's earlier UIMessages):
//   useChat's own request body, {id, messages, trigger, messageId}, with a user message.
//
// The request and the reading are @ai-sdk/react's `Chat` (what `useChat` constructs) over
// the `ai` package's `DefaultChatTransport` (fetch, then parseJsonEventStream validated
// against uiMessageChunkSchema, then processUIMessageStream). The response body is teed:
// one branch goes to the chat, the other is parsed by the same parseJsonEventStream and
// uiMessageChunkSchema to list every chunk the server sent, in order.
//
// Output: {"status", "headers", "chunks", "message", "errors", "chat"}.
// Exit 0: the stream was read; `errors` may hold `error` chunks (source "error-chunk").
// Exit 1: the stream is wrong: a non-2xx status, a missing
//         `x-vercel-ai-ui-message-stream: v1` header, a chunk that is not JSON or fails the
//         chunk schema, a chunk the chat could not apply (e.g. text-delta with no
//         text-start), or the timeout. The JSON object is still printed.
// Exit 2: a bad config or a crash of this script (no JSON object).

import { Chat } from '@ai-sdk/react';
import { DefaultChatTransport, parseJsonEventStream, uiMessageChunkSchema } from 'ai';

const HEADER = 'x-vercel-ai-ui-message-stream';
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}

function describe(error) {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: typeof error, message: String(error) };
}

// What is wrong with an invalid chunk, shortly: the schema is a union of one object per chunk
// type, so of zod's issues only those of the object for the chunk's own type are kept.
function issuesOf(error) {
  const issues = error?.cause?.issues;
  if (!Array.isArray(issues)) return undefined;
  return issues.flatMap((issue) => {
    if (issue.code !== 'invalid_union' || !Array.isArray(issue.errors)) return [issue];
    const own = issue.errors.find((branch) => !branch.some((i) => i.path?.[0] === 'type'));
    return own ?? [{ path: ['type'], message: 'not a UI message chunk type' }];
  }).map(({ path, message }) => ({ path, message }));
}

// A value as JSON would carry it (undefined fields dropped), for the output.
const plain = (value) => (value === undefined ? null : JSON.parse(JSON.stringify(value)));

// Every chunk of the body, in order; `event` counts the data events but [DONE], which the
// parser skips.
async function recordChunks(stream, chunks, errors) {
  let event = 0;
  for await (const parsed of parseJsonEventStream({ stream, schema: uiMessageChunkSchema })) {
    if (parsed.success) {
      chunks.push(plain(parsed.value));
    } else {
      errors.push({
        source: 'parse',
        event,
        ...describe(parsed.error),
        issues: issuesOf(parsed.error),
        value: plain(parsed.rawValue),
        text: parsed.error?.text ?? null,
      });
    }
    event += 1;
  }
}

async function main() {
  let config;
  try {
    config = JSON.parse(await readStdin());
  } catch (error) {
    throw new Error(`stdin must be a JSON config: ${error.message}`);
  }
  if (typeof config?.url !== 'string') throw new Error('config.url (a string) is required');
  const hasBody = Object.hasOwn(config, 'body');
  if (hasBody === (typeof config.text === 'string')) {
    throw new Error('config needs exactly one of "body" (sent as it is) or "text" (useChat)');
  }
  const method = (config.method ?? 'POST').toUpperCase();
  const timeoutMs = config.timeoutMs ?? 30000;

  const result = { status: null, headers: {}, chunks: [], message: null, errors: [], chat: {} };
  let recording = Promise.resolve();
  let timedOut = false;
  const deadline = new AbortController();

  // The transport's fetch: the real request, recorded, its body teed for the chunk list.
  const recordingFetch = async (url, init) => {
    const abort = new AbortController();
    const stop = () => abort.abort();
    init.signal?.addEventListener('abort', stop, { once: true });
    deadline.signal.addEventListener('abort', stop, { once: true });
    const response = await fetch(url, { ...init, method, signal: abort.signal });
    result.status = response.status;
    response.headers.forEach((value, key) => {
      result.headers[key] = value;
    });
    if (!response.ok || response.body == null) {
      const text = await response.text();
      result.errors.push({ source: 'http', message: `HTTP status ${response.status}`, body: text });
      return new Response(NULL_BODY_STATUSES.has(response.status) ? null : text, response);
    }
    if (response.headers.get(HEADER) !== 'v1') {
      result.errors.push({
        source: 'http',
        message: `header ${HEADER} is ${JSON.stringify(response.headers.get(HEADER))}, not "v1"`,
      });
    }
    const [forChat, forRecord] = response.body.tee();
    recording = recordChunks(forRecord, result.chunks, result.errors).catch((error) => {
      if (!timedOut) result.errors.push({ source: 'read', ...describe(error) });
    });
    return new Response(forChat, response);
  };

  const transport = new DefaultChatTransport({
    api: config.url,
    headers: config.headers ?? {},
    fetch: recordingFetch,
    ...(hasBody ? { prepareSendMessagesRequest: () => ({ body: config.body }) } : {}),
  });
  let chatError;
  let finish = {};
  const chat = new Chat({
    messages: config.messages ?? [],
    transport,
    onError: (error) => {
      chatError = error;
    },
    onFinish: ({ isAbort, isDisconnect, isError, finishReason }) => {
      finish = { isAbort, isDisconnect, isError, finishReason: finishReason ?? null };
    },
  });

  const timer = setTimeout(() => {
    timedOut = true;
    deadline.abort();
  }, timeoutMs);
  try {
    await (hasBody ? chat.sendMessage() : chat.sendMessage({ text: config.text }));
    await recording;
  } finally {
    clearTimeout(timer);
  }

  if (timedOut) {
    result.errors.push({ source: 'timeout', message: `no end of stream after ${timeoutMs} ms` });
  }
  const ok = result.status !== null && result.status >= 200 && result.status < 300;
  if (chatError !== undefined && ok) {
    // useChat turns an `error` chunk into `new Error(errorText)` and stops reading there;
    // any other error is the front end failing on the stream.
    const fromChunk =
      chatError.constructor === Error &&
      result.chunks.some((c) => c.type === 'error' && c.errorText === chatError.message);
    result.errors.push({ source: fromChunk ? 'error-chunk' : 'chat', ...describe(chatError) });
  } else if (chatError !== undefined && result.status === null) {
    result.errors.push({ source: 'chat', ...describe(chatError) }); // no response at all
  }
  const last = chat.messages.at(-1);
  result.message = last?.role === 'assistant' ? plain(last) : null;
  result.chat = { status: chat.status, ...finish };
  const failed = result.errors.some((e) => e.source !== 'error-chunk');
  return { result, code: failed ? 1 : 0 };
}

// Exits at once when done: fetch's idle keep-alive connection would hold the process.
main().then(
  ({ result, code }) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(code));
  },
  (error) => {
    process.stderr.write(`read_ui_stream: ${error?.stack ?? error}\n`);
    process.exit(2);
  },
);
