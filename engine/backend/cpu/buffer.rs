//! CPU tensors: ndarray arrays whose bytes a [`MemoryTracker`] counts while they live, and
//! the session that holds parameters by name.

use crate::exec::ParameterAccess;
use crate::memory::{Category, MemoryError, MemoryTracker, Ticket};
use crate::plan::Storage;
use crate::tensor::Element;
use ndarray::ArrayD;
use std::collections::HashMap;
use std::sync::Arc;

/// An array whose bytes are counted by a [`MemoryTracker`] while it lives.
#[derive(Debug)]
pub struct Buffer<T> {
    pub data: ArrayD<T>,
    /// `Half`: the values are rounded to the step's 16-bit type (and kept as `T`).
    pub storage: Storage,
    ticket: Ticket,
}

impl<T: Element> Buffer<T> {
    pub fn new(tracker: &Arc<MemoryTracker>, category: Category, data: ArrayD<T>) -> Result<Self, MemoryError> {
        let bytes = (data.len() * std::mem::size_of::<T>()) as u64;
        let ticket = tracker.allocate(category, bytes)?;
        Ok(Buffer {
            data,
            storage: Storage::F32,
            ticket,
        })
    }
    pub fn category(&self) -> Category {
        self.ticket.category()
    }
    /// The single value of a scalar (or the first element).
    pub fn scalar(&self) -> T {
        self.data.iter().next().copied().unwrap_or(T::nan())
    }
}

/// State that outlives a step: parameters (by name) and the tracker that counts every buffer.
pub struct Session<T> {
    tracker: Arc<MemoryTracker>,
    params: HashMap<String, Buffer<T>>,
}

impl<T: Element> Session<T> {
    pub fn new(tracker: Arc<MemoryTracker>) -> Self {
        Session {
            tracker,
            params: HashMap::new(),
        }
    }
    pub fn tracker(&self) -> &Arc<MemoryTracker> {
        &self.tracker
    }
    pub fn set_param(&mut self, name: &str, data: ArrayD<T>) -> Result<(), MemoryError> {
        self.params.remove(name);
        let buf = Buffer::new(&self.tracker, Category::Parameters, data)?;
        self.params.insert(name.to_string(), buf);
        Ok(())
    }
    pub fn param(&self, name: &str) -> Option<&ArrayD<T>> {
        self.params.get(name).map(|b| &b.data)
    }
    pub fn param_mut(&mut self, name: &str) -> Option<&mut ArrayD<T>> {
        self.params.get_mut(name).map(|b| &mut b.data)
    }
    /// Allocates a counted buffer (optimizer state, staging) from this session's tracker.
    pub fn allocate(&self, category: Category, data: ArrayD<T>) -> Result<Buffer<T>, MemoryError> {
        Buffer::new(&self.tracker, category, data)
    }
}

impl<T: Element> ParameterAccess<Buffer<T>> for Session<T> {
    fn get_param(&self, name: &str) -> Option<&Buffer<T>> {
        self.params.get(name)
    }
}
