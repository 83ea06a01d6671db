use crate::fixtures::*;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_inbox() {
    for (name, store) in [
        ("sqlite", sqlite().await.0),
        ("pg", postgres().await.unwrap().0),
    ] {
        let pool = new_pool(&store).await;
        let c = new_connection(&store, &pool, "main").await;
        let t = std::time::Instant::now();
        let mut n = 0;
        for g in 0..50 {
            let events: Vec<_> = (0..300)
                .map(|i| event(&c, &format!("e{g}-{i}"), Some(i)))
                .collect();
            n += store.inbox_insert(&events).await.unwrap().len();
        }
        eprintln!(
            "BENCH {name}: {n} events in {:?} = {:.0}/s",
            t.elapsed(),
            n as f64 / t.elapsed().as_secs_f64()
        );
    }
}
