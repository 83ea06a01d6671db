//! Paging as streams. A page stream yields one [`Page`] per request (for progress per
//! page); an item stream flattens it. The first page is requested without `page_token`,
//! later ones with the returned token verbatim. A server that says `has_more` without a
//! new token, or repeats a token, ends the stream with [`FeishuError::Paging`] after the
//! page it sent, instead of looping.

use std::collections::HashSet;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use super::FeishuClient;
use super::error::FeishuError;
use super::transport::Call;
use crate::model::{ListData, MemberBelongData, ScopesData};

/// One page of a list endpoint.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Page<T> {
    pub items: Vec<T>,
    /// 0 for the first page.
    pub index: usize,
    pub has_more: bool,
    /// The token of the next page, as Feishu sent it.
    pub page_token: Option<String>,
}

/// Pages of a list endpoint; ends after the last page or the first error.
pub type PageStream<T> = BoxStream<'static, Result<Page<T>, FeishuError>>;
/// Items of a list endpoint, page after page; ends after the last item or the first error.
pub type ItemStream<T> = BoxStream<'static, Result<T, FeishuError>>;

/// The paging fields of a list answer.
pub(crate) trait Paged: DeserializeOwned + Default + Send + 'static {
    fn has_more(&self) -> bool;
    fn next_page_token(&self) -> Option<&str>;
}

impl<T: DeserializeOwned + Send + 'static> Paged for ListData<T> {
    fn has_more(&self) -> bool {
        self.has_more.unwrap_or(false)
    }
    fn next_page_token(&self) -> Option<&str> {
        self.page_token.as_deref()
    }
}

impl Paged for ScopesData {
    fn has_more(&self) -> bool {
        self.has_more.unwrap_or(false)
    }
    fn next_page_token(&self) -> Option<&str> {
        self.page_token.as_deref()
    }
}

impl Paged for MemberBelongData {
    fn has_more(&self) -> bool {
        self.has_more.unwrap_or(false)
    }
    fn next_page_token(&self) -> Option<&str> {
        self.page_token.as_deref()
    }
}

struct Cursor {
    client: FeishuClient,
    call: Call,
    index: usize,
    next_token: Option<String>,
    seen_tokens: HashSet<String>,
    finished: bool,
    /// A paging violation found on the page just yielded, reported on the next poll.
    deferred: Option<FeishuError>,
}

/// The raw `data` of each page, with its index.
pub(crate) fn raw_pages<D: Paged>(
    client: FeishuClient,
    call: Call,
) -> BoxStream<'static, Result<(usize, D), FeishuError>> {
    let cursor = Cursor {
        client,
        call,
        index: 0,
        next_token: None,
        seen_tokens: HashSet::new(),
        finished: false,
        deferred: None,
    };
    stream::try_unfold(cursor, |mut c| async move {
        if let Some(err) = c.deferred.take() {
            return Err(err);
        }
        if c.finished {
            return Ok(None);
        }
        let mut call = c.call.clone();
        if let Some(token) = &c.next_token {
            call.query.push(("page_token", token.clone()));
        }
        let data: D = c.client.inner.get_data(&call).await?;
        let index = c.index;
        c.index += 1;
        if data.has_more() {
            let broken = |detail: String| FeishuError::Paging {
                endpoint: c.call.endpoint.to_owned(),
                detail,
            };
            match data.next_page_token().filter(|t| !t.is_empty()) {
                None => {
                    c.deferred = Some(broken(format!(
                        "page {} says has_more=true but carries no page_token",
                        index + 1
                    )));
                }
                Some(token) if !c.seen_tokens.insert(token.to_owned()) => {
                    c.deferred = Some(broken(format!(
                        "page {} repeats the page_token {token:?} of an earlier page",
                        index + 1
                    )));
                }
                Some(token) => c.next_token = Some(token.to_owned()),
            }
        } else {
            c.finished = true;
        }
        Ok(Some(((index, data), c)))
    })
    .boxed()
}

/// Pages of a list endpoint whose `data` is [`ListData`].
pub(crate) fn list_pages<T>(client: FeishuClient, call: Call) -> PageStream<T>
where
    T: DeserializeOwned + Send + 'static,
{
    raw_pages::<ListData<T>>(client, call)
        .map_ok(|(index, data)| Page {
            has_more: data.has_more.unwrap_or(false),
            items: data.items.unwrap_or_default(),
            index,
            page_token: data.page_token,
        })
        .boxed()
}

/// Flattens pages into items.
pub fn items<T: Send + 'static>(pages: PageStream<T>) -> ItemStream<T> {
    pages
        .map_ok(|page| stream::iter(page.items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}
