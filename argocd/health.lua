-- Argo CD health check for pfo.dev PrefectFlowDeployment, PrefectWorkPool and
-- PrefectConcurrencyLimit (prefect-flow-operator). Installed by argocd-cm.yaml for all
-- three kinds; tested by tests/unit/test_argocd_health.py with a real Lua runtime.
--
-- The operator writes kstatus-compatible status: status.observedGeneration, a
-- summary condition `Ready` and `Stalled` (True: retrying cannot help until the
-- spec changes), each condition with its own observedGeneration. Mapping, first
-- match wins:
--   metadata.deletionTimestamp set            -> Progressing (finalizer: Prefect delete pending)
--   no status yet                             -> Progressing
--   status.observedGeneration < generation    -> Progressing (spec change not yet seen)
--   Stalled=True                              -> Degraded    (reason: message names the fix)
--   Ready reason Suspended                    -> Suspended   (spec.suspend: true)
--   Ready condition older than the generation -> Progressing
--   Ready=True                                -> Healthy
--   anything else (Ready=False/Unknown, none) -> Progressing
local hs = {}
local meta = obj.metadata or {}

local function describe(c, fallback)
  if c == nil then return fallback end
  local msg = c.reason or fallback
  if c.message ~= nil and c.message ~= "" then msg = msg .. ": " .. c.message end
  return msg
end

if meta.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Pending deletion: the operator removes the Prefect object, then its finalizer pfo.dev/finalizer"
  return hs
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile"
  return hs
end

local generation = meta.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready, stalled = nil, nil
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Ready" then ready = c end
    if c.type == "Stalled" then stalled = c end
  end
end

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  if ready ~= nil and ready.status ~= "True" then
    hs.message = describe(ready, "Stalled")
  else
    hs.message = describe(stalled, "Stalled")
  end
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready, "Suspended")
  return hs
end

if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Ready condition is from generation " .. tostring(ready.observedGeneration)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Not ready")
return hs
