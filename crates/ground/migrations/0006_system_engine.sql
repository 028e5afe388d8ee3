-- What each system's engine really holds, as its agent last reported it in a hello: a JSON
-- `wire::EngineReport` (images with ids and platforms, the engine's platform, its builder). NULL
-- until an agent that reports one says hello. The ground compares it with the system's
-- declaration (the systems file) and shows the drift.
ALTER TABLE systems ADD COLUMN engine TEXT;
