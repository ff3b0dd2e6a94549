-- At most one proposal waits for consent per device: a newer one supersedes it
-- (agent/actions.py cancels the older, under a per-household advisory lock, with the event
-- detail saying so); this index makes the database refuse a second one whatever races.
-- Older duplicates from before are superseded the same way first, each device keeping its
-- newest.
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY device_id ORDER BY created_at DESC, id DESC) AS n
      FROM actions
     WHERE status = 'proposed'
), gone AS (
    UPDATE actions AS a SET status = 'cancelled', updated_at = now()
      FROM ranked r
     WHERE a.id = r.id AND r.n > 1
    RETURNING a.id
)
INSERT INTO action_events (action_id, status, detail)
SELECT id, 'cancelled', 'superseded by a newer proposal for this device' FROM gone;

CREATE UNIQUE INDEX actions_one_pending_per_device ON actions (device_id)
    WHERE status = 'proposed';
