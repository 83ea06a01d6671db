-- An event that carries an object no longer stores it: `change_seq` points at the change-log
-- row of the same pool whose `object` it is, and `external_ids` holds the object's Feishu ids
-- as they were then (the change log's object has none). Older rows keep the object in `data`
-- and have neither (docs/change-feed.md, "What the feed stores").
ALTER TABLE feed_events ADD COLUMN change_seq INTEGER;
ALTER TABLE feed_events ADD COLUMN external_ids TEXT;
