//! The completion ticket of an admission, as text.
//!
//! `RATESIM.CHECK` answers an admission that holds a concurrency permit or a
//! budget reservation with a ticket; `RATESIM.COMPLETE` takes it back to
//! release the permits and settle the budgets. The text is one item per
//! limit, joined by `,`: `<limit index>:p:<lease end>:<permit id>` for a
//! permit, `<limit index>:r:<period>:<amount>` for a reservation (numbers in
//! decimal; a permit without a lease ends at 18446744073709551615). Clients
//! treat it as opaque.

use ratesim::engines::{Permit, Ticket};
use ratesim::policy::{Tickets, MAX_COMPLETING_LIMITS_PER_PLAN};

/// The text of `tickets`; `None` if there is nothing to complete.
pub fn encode(tickets: &Tickets) -> Option<String> {
    if tickets.is_empty() {
        return None;
    }
    let items: Vec<String> = tickets
        .iter()
        .filter_map(|(i, t)| match t {
            Ticket::Permit(p) => Some(format!("{i}:p:{}:{}", p.expires, p.id)),
            Ticket::Reservation { period, amount } => Some(format!("{i}:r:{period}:{amount}")),
            Ticket::None => None,
        })
        .collect();
    Some(items.join(","))
}

/// Reads a ticket for a plan of `limits` limits.
pub fn decode(text: &str, limits: usize) -> Result<Tickets, String> {
    let mut out = Tickets::default();
    let mut count = 0;
    for item in text.split(',') {
        let bad = |why: &str| format!("ticket item {item:?}: {why} (a ticket is what RATESIM.CHECK answered)");
        let parts: Vec<&str> = item.split(':').collect();
        let [index, kind, a, b] = parts[..] else { return Err(bad("expected index:kind:number:number")) };
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad(&format!("{s:?} is not a whole number")));
        let index: usize = index.parse().map_err(|_| bad("the limit index is not a whole number"))?;
        if index >= limits {
            return Err(bad(&format!("the plan has {limits} limits, no limit {index}")));
        }
        let ticket = match kind {
            "p" => Ticket::Permit(Permit { expires: number(a)?, id: number(b)? }),
            "r" => Ticket::Reservation { period: number(a)?, amount: number(b)? },
            _ => return Err(bad("the kind is neither p (permit) nor r (reservation)")),
        };
        count += 1;
        if count > MAX_COMPLETING_LIMITS_PER_PLAN {
            return Err(format!("a ticket holds at most {MAX_COMPLETING_LIMITS_PER_PLAN} items"));
        }
        if out.iter().any(|(i, _)| i == index) {
            return Err(bad("a second item for the same limit"));
        }
        out.push(index, ticket);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};
    use ratesim::engines::{Permit, Ticket};
    use ratesim::policy::Tickets;

    #[test]
    fn tickets_round_trip_through_their_text() {
        let mut t = Tickets::default();
        t.push(2, Ticket::Permit(Permit { expires: u64::MAX, id: 1_767_225_600_000_000_000 }));
        t.push(5, Ticket::Reservation { period: 20_454, amount: 100 });
        let text = encode(&t).unwrap();
        assert_eq!(text, "2:p:18446744073709551615:1767225600000000000,5:r:20454:100");
        assert_eq!(decode(&text, 6).unwrap(), t);
        assert_eq!(encode(&Tickets::default()), None);
        assert!(decode(&text, 5).unwrap_err().contains("no limit 5"));
        assert!(decode("", 6).is_err());
        assert!(decode("1:p:2", 6).is_err());
    }
}
