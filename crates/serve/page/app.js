// The studio page: a session of turns over the /v1 API. Progress comes from the job's
// server-sent events, read through fetch so that the bearer token can be sent.
"use strict";

const $ = (selector) => document.querySelector(selector);
const session = { id: null };

function headers(json) {
  const h = {};
  const token = $("#token").value.trim();
  if (token) h["Authorization"] = "Bearer " + token;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error((data.error && data.error.message) || response.status + " " + response.statusText);
  }
  return data;
}

function say(text) {
  $("#status").textContent = text || "";
}

async function loadVocab() {
  try {
    const vocab = await api("GET", "/v1/vocab");
    for (const [id, names] of [["#style", vocab.styles], ["#background", vocab.backgrounds]]) {
      for (const name of names) {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name.replace(/_/g, " ");
        $(id).appendChild(option);
      }
    }
  } catch (e) {
    say(e.message);
  }
}

function pins() {
  return { style: $("#style").value || null, background: $("#background").value || null };
}

async function ensureSession() {
  if (session.id) return session.id;
  const created = await api("POST", "/v1/sessions", { seed: Number($("#seed").value) || 0, ...pins() });
  session.id = created.id;
  history.replaceState(null, "", "#session=" + created.id);
  return session.id;
}

async function pinChanged() {
  if (!session.id) return;
  try {
    await api("PATCH", "/v1/sessions/" + session.id, pins());
    say("");
  } catch (e) {
    say(e.message);
  }
}

function turnElement(turn) {
  const el = document.createElement("article");
  el.className = "turn";
  el.dataset.job = turn.job.id;
  el.innerHTML =
    '<p class="instruction"></p><progress max="1" value="0"></progress> <span class="stage">queued</span>' +
    '<div class="results"></div><div class="actions"></div>';
  const instruction = el.querySelector(".instruction");
  instruction.textContent = turn.instruction;
  instruction.dataset.turn = turn.turn;
  $("#turns").appendChild(el);
  return el;
}

function showProgress(el, p) {
  const bar = el.querySelector("progress");
  bar.max = Math.max(p.total, 1);
  bar.value = p.done;
  el.querySelector(".stage").textContent = p.stage + " " + p.done + "/" + p.total;
}

async function fileUrl(file) {
  const response = await fetch(file.url, { headers: headers(false) });
  if (!response.ok) throw new Error(file.name + ": " + response.status);
  return URL.createObjectURL(await response.blob());
}

async function showJob(el, job) {
  const results = el.querySelector(".results");
  const actions = el.querySelector(".actions");
  actions.innerHTML = "";
  if (job.state !== "completed") {
    el.querySelector("progress").remove();
    el.querySelector(".stage").textContent = "";
    const message = document.createElement("p");
    message.className = "error";
    message.textContent = job.state + (job.error ? ": " + job.error : "");
    results.appendChild(message);
    return;
  }
  showProgress(el, { stage: "done", done: 1, total: 1 });
  el.querySelector(".stage").textContent = "done in " + (job.seconds || 0).toFixed(1) + " s";
  const edit = job.meta && job.meta.edit;
  if (edit) {
    // What the scene editor read from the instruction, so a misreading is visible.
    const read = document.createElement("p");
    read.className = "edit";
    const object = edit.target === undefined ? "" : " object " + (edit.target + 1);
    read.textContent = "edit: " + edit.op + object + " → " + edit.value;
    el.querySelector(".instruction").after(read);
  }
  for (const file of job.files) {
    let media = null;
    if (file.name === "image.png") {
      media = document.createElement("img");
      media.alt = el.querySelector(".instruction").textContent;
    } else if (file.name === "video.mp4") {
      media = document.createElement("video");
      Object.assign(media, { controls: true, autoplay: true, loop: true, muted: true, playsInline: true });
    } else if (file.name === "audio.wav") {
      media = document.createElement("audio");
      media.controls = true;
    }
    if (!media) continue;
    media.className = "result";
    media.src = await fileUrl(file);
    results.appendChild(media);
  }
  for (const [label, thumbs] of [["👍 good", "up"], ["👎 bad", "down"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "feedback";
    button.dataset.thumbs = thumbs;
    button.textContent = label;
    button.addEventListener("click", async () => {
      try {
        await api("POST", "/v1/jobs/" + job.id + "/feedback", { thumbs });
        actions.querySelectorAll("button.feedback").forEach((b) => (b.disabled = true));
        const thanks = document.createElement("span");
        thanks.className = "thanks";
        thanks.textContent = "thanks";
        actions.appendChild(thanks);
      } catch (e) {
        say(e.message);
      }
    });
    actions.appendChild(button);
  }
}

// Reads the job's event stream until its `done` event.
async function follow(el, jobId) {
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.addEventListener("click", () => api("DELETE", "/v1/jobs/" + jobId).catch((e) => say(e.message)));
  el.querySelector(".actions").appendChild(cancel);
  const response = await fetch("/v1/jobs/" + jobId + "/events", { headers: headers(false) });
  if (!response.ok) throw new Error("events: " + response.status);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (!data) continue;
      const payload = JSON.parse(data);
      if (name === "progress") showProgress(el, payload);
      else if (name === "state") el.querySelector(".stage").textContent = payload.state;
      else if (name === "done") {
        await reader.cancel();
        await showJob(el, payload);
        return;
      }
    }
  }
}

async function send(event) {
  event.preventDefault();
  const instruction = $("#prompt").value.trim();
  if (!instruction) return;
  const modalities = [...document.querySelectorAll('input[name="modality"]:checked')].map((i) => i.value);
  $("#send").disabled = true;
  try {
    const id = await ensureSession();
    const turn = await api("POST", "/v1/sessions/" + id + "/turns", {
      instruction,
      modalities: modalities.length ? modalities : null,
    });
    $("#prompt").value = "";
    $("#prompt").placeholder = "what to change, e.g. two blue circles on a grassy field";
    $("#send").textContent = "Edit";
    say("");
    const el = turnElement(turn);
    $("#send").disabled = false;
    await follow(el, turn.job.id);
  } catch (e) {
    say(e.message);
  } finally {
    $("#send").disabled = false;
  }
}

// A session named in the address (#session=ID) is shown again on reload.
async function restore() {
  const match = location.hash.match(/session=([0-9a-f]+)/);
  if (!match) return;
  try {
    const found = await api("GET", "/v1/sessions/" + match[1]);
    session.id = found.id;
    $("#seed").value = found.seed;
    $("#style").value = found.style || "";
    $("#background").value = found.background || "";
    for (const turn of found.turns) {
      const el = turnElement(turn);
      if (["queued", "running"].includes(turn.job.state)) follow(el, turn.job.id).catch((e) => say(e.message));
      else await showJob(el, turn.job);
    }
    if (found.turns.length) $("#send").textContent = "Edit";
  } catch (e) {
    say(e.message);
  }
}

$("#token").value = sessionStorage.getItem("mmgen-token") || "";
$("#token").addEventListener("change", () => sessionStorage.setItem("mmgen-token", $("#token").value.trim()));
$("#ask").addEventListener("submit", send);
$("#style").addEventListener("change", pinChanged);
$("#background").addEventListener("change", pinChanged);
$("#new-session").addEventListener("click", () => {
  session.id = null;
  $("#turns").innerHTML = "";
  $("#send").textContent = "Generate";
  history.replaceState(null, "", location.pathname);
});
loadVocab().then(restore);
