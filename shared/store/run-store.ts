/**
 * One checkpointed run, whatever the work (the expiry sweep, reconciliation): claim the run,
 * commit each unit of work together with the checkpoint that moves past it, resume from the
 * checkpoint, complete it. Every unit is committed in one transaction conditional on the
 * checkpoint's sequence number (and the run still RUNNING), so a resumed, duplicated or concurrent
 * invocation can never count a unit twice or skip one; every step is safe to repeat.
 */
import { type StoreAccess, type StoreClient, storeClient, type WriteItem } from './client';
import {
  type RunCheckpoint,
  type RunKind,
  runCheckpointFromItem,
  runCheckpointItem,
  runPageFromItem,
  runPageItem,
} from './entities/run';
import { conditionally } from './retry';

export type CommitOutcome = 'committed' | 'conflict';

/**
 * How a commit moves the checkpoint to the next unit: either attributes set (an undefined value
 * removes the attribute) and counters added to, with `seq` moved on (one UpdateItem), or the whole
 * next checkpoint, whose `seq` is the next unit's (one PutItem). Each kind of run keeps the one its
 * function's role is granted.
 */
export type RunAdvance<C> = { set: Record<string, unknown>; add?: Record<string, number> } | { next: C };

/** A unit's results, written with the commit; its TTL counts from `at`. */
export interface RunPage<P> {
  seq: number;
  body: P;
  at: string;
}

export class RunStore<C extends RunCheckpoint, P extends object> {
  private readonly db: StoreClient;

  constructor(
    access: StoreAccess,
    private readonly kind: RunKind<C, P>,
  ) {
    this.db = storeClient(access);
  }

  get(runId: string): Promise<C | undefined> {
    return this.db.readAs(this.kind.checkpointKey(runId), (item) => runCheckpointFromItem(this.kind, item));
  }

  /** Creates the run's checkpoint; false when a run of that id already exists. */
  create(checkpoint: C): Promise<boolean> {
    return conditionally(
      this.db.put({
        Item: runCheckpointItem(this.kind, checkpoint),
        ConditionExpression: 'attribute_not_exists(PK)',
      }),
    );
  }

  /** Claims a run: creates its checkpoint, or returns the checkpoint of the run already started under that id. */
  async claim(fresh: C): Promise<C> {
    if (await this.create(fresh)) return fresh;
    const existing = await this.get(fresh.runId);
    if (!existing) {
      throw new Error(`${this.kind.entity} ${fresh.runId}: checkpoint vanished after a conflicting create`);
    }
    return existing;
  }

  /** Counts one more invocation working on the run (for the summary; not a lock). */
  async touch(runId: string, at: string): Promise<void> {
    await this.db.update({
      Key: this.kind.checkpointKey(runId),
      UpdateExpression: 'ADD invocations :one SET updatedAt = :at',
      ConditionExpression: 'attribute_exists(PK)',
      ExpressionAttributeValues: { ':one': 1, ':at': at },
    });
  }

  /**
   * Commits one unit: its page (when there is one) and the checkpoint moved to `expectedSeq + 1`,
   * only if the checkpoint is still at `expectedSeq` and RUNNING. `conflict` means another
   * invocation committed first: follow its checkpoint, or stop.
   */
  async commit(
    runId: string,
    expectedSeq: number,
    advance: RunAdvance<C>,
    page?: RunPage<P>,
  ): Promise<CommitOutcome> {
    const items: WriteItem[] = [this.checkpointWrite(runId, expectedSeq, advance)];
    if (page) {
      items.push({
        Put: { Item: runPageItem(this.kind, runId, page), ConditionExpression: 'attribute_not_exists(PK)' },
      });
    }
    return (await this.db.transact(items)) ? 'conflict' : 'committed';
  }

  /** Marks the run complete with its result; false when it was already complete. */
  complete(runId: string, result: Record<string, unknown>, at: string): Promise<boolean> {
    return conditionally(
      this.db.update({
        Key: this.kind.checkpointKey(runId),
        UpdateExpression: 'SET #status = :complete, #result = :result, updatedAt = :at',
        ConditionExpression: '#status = :running',
        ExpressionAttributeNames: { '#status': 'status', '#result': 'result' },
        ExpressionAttributeValues: {
          ':complete': 'COMPLETE',
          ':running': 'RUNNING',
          ':result': result,
          ':at': at,
        },
      }),
    );
  }

  /** Every committed page of a run, in order. */
  async pages(runId: string): Promise<P[]> {
    const pages: P[] = [];
    const items = this.db.queryAll({
      KeyConditionExpression: 'PK = :pk AND begins_with(SK, :prefix)',
      ExpressionAttributeValues: {
        ':pk': this.kind.checkpointKey(runId).PK,
        ':prefix': this.kind.pagePrefix,
      },
      ConsistentRead: true,
    });
    for await (const item of items) pages.push(runPageFromItem(this.kind, item));
    return pages;
  }

  /** The checkpoint write of a commit, conditional on the checkpoint at `expectedSeq` and RUNNING. */
  private checkpointWrite(runId: string, expectedSeq: number, advance: RunAdvance<C>): WriteItem {
    const names: Record<string, string> = { '#seq': 'seq', '#status': 'status' };
    const condition = '#seq = :expected AND #status = :running';
    if ('next' in advance) {
      if (advance.next.runId !== runId || advance.next.seq !== expectedSeq + 1) {
        throw new RangeError(
          `${this.kind.entity} ${runId}: a commit from unit ${expectedSeq} moves to the next`,
        );
      }
      return {
        Put: {
          Item: runCheckpointItem(this.kind, advance.next),
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: { ':expected': expectedSeq, ':running': 'RUNNING' },
        },
      };
    }
    const values: Record<string, unknown> = {
      ':expected': expectedSeq,
      ':next': expectedSeq + 1,
      ':running': 'RUNNING',
    };
    const alias = (name: string): string => {
      const known = Object.entries(names).find(([, value]) => value === name)?.[0];
      if (known) return known;
      const placeholder = `#a${Object.keys(names).length}`;
      names[placeholder] = name;
      return placeholder;
    };
    const sets = ['#seq = :next'];
    const removes: string[] = [];
    Object.entries(advance.set).forEach(([name, value], index) => {
      if (name === 'seq' || name === 'runId' || name === 'createdAt') return;
      if (value === undefined) {
        removes.push(alias(name));
        return;
      }
      values[`:s${index}`] = value;
      sets.push(`${alias(name)} = :s${index}`);
    });
    Object.entries(advance.add ?? {}).forEach(([name, value], index) => {
      const placeholder = alias(name);
      values[`:n${index}`] = value;
      sets.push(`${placeholder} = ${placeholder} + :n${index}`);
    });
    return {
      Update: {
        Key: this.kind.checkpointKey(runId),
        UpdateExpression: `SET ${sets.join(', ')}${removes.length ? ` REMOVE ${removes.join(', ')}` : ''}`,
        ConditionExpression: condition,
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      },
    };
  }
}
