"""The official OpenAI Python SDK, unchanged, against ChatServer's /v1: the models list, a
completion answered whole and one streamed with its usage, an image part, and the errors the SDK
raises for an unknown model, a refused request and a bad key.

Run by Tests/AppTests/Inference/OpenAISDKTests.swift with:
  V1_BASE_URL  the server's /v1
  V1_API_KEY   a personal API key (scope inference)
  V1_MODEL     a model of the server's, with vision
The test's emulator answers in order: "Bonjour, monde" (whole), "Streamed reply" (streamed),
"A red pixel" (the image).
"""
import base64
import os
import sys
import zlib
import struct

import openai
from openai import OpenAI

base_url = os.environ["V1_BASE_URL"]
key = os.environ["V1_API_KEY"]
model = os.environ["V1_MODEL"]
client = OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)


def check(condition, message):
    if not condition:
        print("FAILED:", message, flush=True)
        sys.exit(1)
    print("ok:", message, flush=True)


# The models list.
models = client.models.list()
ids = [m.id for m in models.data]
check(model in ids, f"{model} is listed among {ids}")
check(all(m.object == "model" and isinstance(m.created, int) and m.owned_by for m in models.data), "each model is OpenAI's model object")

# A completion answered whole.
reply = client.chat.completions.create(
    model=model,
    messages=[{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Say hello to the world."}],
    max_tokens=64, temperature=0.5, stop=["END"],
)
check(reply.object == "chat.completion" and reply.id.startswith("chatcmpl-"), "a chat.completion")
check(reply.choices[0].message.role == "assistant", "the assistant answers")
check(reply.choices[0].message.content == "Bonjour, monde", f"its text: {reply.choices[0].message.content!r}")
check(reply.choices[0].finish_reason == "stop", f"finish_reason: {reply.choices[0].finish_reason}")
check(reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
      and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens, f"usage: {reply.usage}")

# A streamed completion, with its usage.
stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Stream something."}], stream=True,
    stream_options={"include_usage": True}, max_completion_tokens=64,
)
text, finish, usage, chunks = "", None, None, 0
for chunk in stream:
    chunks += 1
    check(chunk.object == "chat.completion.chunk", "a chunk") if chunks == 1 else None
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage is not None:
        usage = chunk.usage
check(text == "Streamed reply", f"the streamed text: {text!r} in {chunks} chunks")
check(finish == "stop", f"the streamed finish_reason: {finish}")
check(usage is not None and usage.completion_tokens > 0, f"the streamed usage: {usage}")


def png_pixel():
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


# An image, as a data URL.
url = "data:image/png;base64," + base64.b64encode(png_pixel()).decode()
seen = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
    {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
check(seen.choices[0].message.content == "A red pixel", f"the image's answer: {seen.choices[0].message.content!r}")

# Errors, as the SDK raises them.
try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    check(False, "an unknown model is refused")
except openai.NotFoundError as error:
    check(error.status_code == 404 and error.code == "model_not_found", f"an unknown model: {error.status_code} {error.code}")
try:
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], n=2)
    check(False, "n=2 is refused")
except openai.BadRequestError as error:
    check(error.status_code == 400 and error.param == "n", f"n=2: {error.status_code} param={error.param}")
try:
    OpenAI(base_url=base_url, api_key="csk_" + "A" * 43, max_retries=0).models.list()
    check(False, "an unknown key is refused")
except openai.AuthenticationError as error:
    check(error.status_code == 401, f"an unknown key: {error.status_code}")
print("all checks passed", flush=True)
