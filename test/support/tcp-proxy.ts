import net from 'node:net';

/**
 * A TCP proxy in front of the test database server, so a test can take the database away and
 * bring it back without touching the real server.
 */
export class TcpProxy {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();
  private tripwire?: { text: Buffer; hit: () => void };
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(port = this.port): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, this.targetHost);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      upstream.pipe(client);
      client.on('data', (chunk: Buffer) => {
        const wire = this.tripwire;
        if (wire && chunk.includes(wire.text)) {
          this.tripwire = undefined;
          this.cut();
          wire.hit();
          return;
        }
        upstream.write(chunk);
      });
      client.on('end', () => upstream.end());
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Cuts every open connection; new ones are accepted again at once (a restarted server). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /**
   * Cuts every open connection when a client next sends a packet containing `text`, before the
   * server sees it: the statement a test names is the point of failure. Resolves once it fired.
   */
  cutOn(text: string): Promise<void> {
    return new Promise((resolve) => (this.tripwire = { text: Buffer.from(text), hit: resolve }));
  }

  /** Refuses new connections and cuts the open ones, as a crashed server would. */
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}
