-- Jobs name the instance that runs them, so a restarted instance can end the jobs its stopped
-- process left running, and any instance can end running jobs whose lease expired (README,
-- "Running orgsync"). Both look only at running jobs, through these partial indexes.
ALTER TABLE jobs ADD COLUMN instance TEXT;
CREATE INDEX jobs_running_by_instance ON jobs (instance) WHERE state = 'running';
CREATE INDEX jobs_running_by_connection ON jobs (connection_id) WHERE state = 'running';
